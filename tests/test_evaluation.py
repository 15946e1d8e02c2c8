"""The eval command's arithmetic on a hand-checked case, and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retriever import Hit, RetrieverError
from retriever.cli import app
from retriever.search.evaluation import EvalQuery, Metrics, Outcome, evaluate, read_queries


def hit(rank: int, heading: str, text: str = "") -> Hit:
    return Hit(rank, 1.0 / rank, "n.md", heading, 1, 1, text)


def test_metrics_by_hand() -> None:
    q = EvalQuery("q", "t", "ko")
    outcomes = [Outcome(q, 1, ""), Outcome(q, 2, ""), Outcome(q, None, ""), Outcome(q, 5, "")]
    m = Metrics.of(outcomes)
    assert (m.n, m.recall_at_1, m.recall_at_5) == (4, 0.25, 0.75)
    assert m.mrr_at_10 == pytest.approx((1 + 1 / 2 + 0 + 1 / 5) / 4)


def test_evaluate_finds_the_first_relevant_rank_per_language() -> None:
    results = {
        "a": [hit(1, "배치사이즈"), hit(2, "other")],
        "b": [hit(1, "other"), hit(2, "x", "- lr=1e-4 for bert"), hit(3, "lr=1e-4")],
        "c": [hit(1, "other")],
    }
    queries = [EvalQuery("a", "배치", "ko"), EvalQuery("b", "lr=1e-4", "en"), EvalQuery("c", "none", "en")]
    report = evaluate(queries, lambda query, k: results[query])
    assert report.by_lang["ko"].recall_at_1 == 1.0
    assert report.by_lang["en"].recall_at_5 == 0.5 and report.by_lang["en"].mrr_at_10 == 0.25
    assert report.overall.mrr_at_10 == pytest.approx((1 + 0.5) / 3)
    assert [(m.query.query, m.rank, m.top) for m in report.misses] == [("b", 2, "other"), ("c", None, "other")]


def test_a_target_may_run_from_a_heading_into_its_text() -> None:
    query = EvalQuery("육아휴직 조문", "제19조(육아휴직) ① 사업주는", "ko")
    report = evaluate([query], lambda query, k: [hit(1, "제19조(육아휴직)", "① 사업주는 근로자가")])
    assert report.overall.recall_at_1 == 1.0


def test_a_target_matches_whatever_spaces_an_extractor_put_into_the_line() -> None:
    """pypdf and pdfminer read the same PDF line as `결측 치 사례` and `결측치 사례`, `W ilcoxon` and `Wilcoxon`."""
    queries = [EvalQuery("결측", "결측치 사례 제거하기", "ko"), EvalQuery("wilcoxon", "이-표본 Wilcoxon 검정", "en")]
    results = [hit(1, "p. 4", "- 결측 치 사례 제거하기\n- 이-표본 W ilcoxon 검정")]
    assert evaluate(queries, lambda query, k: results).overall.recall_at_1 == 1.0


def test_slices_by_direction_count_misses_and_skip_unknown_passage_languages() -> None:
    results = {"a": [hit(1, "배치")], "b": [hit(1, "other"), hit(3, "retry")], "c": [hit(1, "other")], "d": []}
    queries = [
        EvalQuery("a", "배치", "en", "ko"),
        EvalQuery("b", "retry", "ko", "en"),
        EvalQuery("c", "none", "ko", "en"),
        EvalQuery("d", "none", "ko"),
    ]
    report = evaluate(queries, lambda query, k: results[query])
    assert list(report.by_direction) == ["en→ko", "ko→en"]
    assert (report.by_direction["en→ko"].n, report.by_direction["en→ko"].recall_at_1) == (1, 1.0)
    ko_en = report.by_direction["ko→en"]
    assert (ko_en.n, ko_en.recall_at_1, ko_en.recall_at_5, ko_en.mrr_at_10) == (2, 0.0, 0.5, pytest.approx(1 / 6))
    assert report.by_lang["ko"].n == 3 and report.to_json()["by_direction"]["ko→en"]["n"] == 2  # type: ignore[index]


def test_query_file_needs_its_columns(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("question\tanswer\nq\ta\n", encoding="utf-8")
    with pytest.raises(RetrieverError, match="columns query and target"):
        read_queries(bad)
    good = tmp_path / "good.tsv"
    good.write_text("query\ttarget\nq\ta\n", encoding="utf-8")
    assert read_queries(good) == [EvalQuery("q", "a", "-")]
    both = tmp_path / "both.tsv"
    both.write_text("query\ttarget\tlang\ttext_lang\nq\ta\tko\ten\n", encoding="utf-8")
    assert read_queries(both) == [EvalQuery("q", "a", "ko", "en")] and read_queries(both)[0].direction == "ko→en"


def test_eval_command_end_to_end(repo_notes: Path, tmp_path: Path) -> None:
    queries = tmp_path / "q.tsv"
    queries.write_text(
        "query\ttarget\tlang\ttext_lang\n배치 사이즈는 어떻게 정하나요?\t배치사이즈\tko\tko\n"
        "What learning rate for BERT?\tlr=1e-4\ten\tko\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["eval", str(queries), "--notes", str(repo_notes), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["overall"]["n"] == 2 and report["overall"]["recall_at_1"] == 1.0
    assert set(report["by_lang"]) == {"ko", "en"} and set(report["by_direction"]) == {"ko→ko", "en→ko"}
    assert report["misses"] == []
    missing = CliRunner().invoke(app, ["eval", str(tmp_path / "none.tsv"), "--notes", str(repo_notes)])
    assert missing.exit_code == 1 and "cannot read query file" in missing.stderr
