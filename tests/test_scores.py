"""Scores that mean something however few passages are in play: a filter leaving one or two, a journal where one
heading happens to ask a question."""

from __future__ import annotations

from pathlib import Path

import pytest

from retriever import Retriever

JOURNAL = {  # one heading asks (팀 이동을 할까); the rest of the journal asks nothing
    "2024-03-02.md": "# 3월 2일\n## 아침\n커피를 마시고 출근했다.\n## 등산\n북한산에 올랐는데 내려올 때 무릎이 아팠다. #운동\n",
    "2024-03-05.md": "# 3월 5일\n## 회의\n분기 계획을 정리했다.\n## 팀 이동을 할까\n새 팀에서 제안이 왔다. 고민 중이다.\n",
    "2024-03-09.md": "# 3월 9일\n## 저녁\n친구와 파스타를 먹었다. #운동\n## 산책\n한강을 따라 걸었다. 다리가 조금 뻐근했다.\n",
    "2024-03-12.md": "# 3월 12일\n## 병원\n무릎 때문에 정형외과에 갔다. #병원\n",
}
QUESTION = "무릎이 아팠던 등산"


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Retriever:
    root = tmp_path_factory.mktemp("journal")
    notes = root / "notes"
    notes.mkdir()
    for name, text in JOURNAL.items():
        (notes / name).write_text(text, encoding="utf-8")
    api = Retriever(notes, root / "index", models=["e5"], cache_dir=model_cache)
    api.index()
    return api


def test_one_asking_heading_does_not_make_a_journal_q_and_a(journal: Retriever) -> None:
    hits = journal.similar(QUESTION, k=2)
    assert (hits[0].path, hits[0].question) == ("2024-03-02.md", "3월 2일 > 등산")
    assert len(hits) == 2 and all(hit.score != 0 for hit in hits)
    assert hits[0].score > hits[1].score


def test_fewer_questions_than_k_are_followed_by_the_closest_sections(journal: Retriever) -> None:
    hits = journal.similar("팀을 옮길지 고민", k=3, path="2024-03-05.md")  # this note is Q&A: both its sections ask
    assert [h.heading for h in hits[:2]] == ["팀 이동을 할까", "회의"]
    assert len(journal.similar("팀을 옮길지 고민", k=6)) == 6  # two questions, then four other sections
    scores = [hit.score for hit in journal.similar("팀을 옮길지 고민", k=6)]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 6


@pytest.mark.parametrize("filters", [{"tag": "병원"}, {"tag": "운동"}, {"path": "2024-03-02.md"}])
def test_a_filter_leaving_few_passages_keeps_their_scores(journal: Retriever, filters: dict) -> None:
    """Standardised over the passages a filter leaves, one scored 0 and two ±1, whatever they said; now each keeps
    the score it has unfiltered (the corpus is small enough for all of it to be re-ranked)."""
    unfiltered = {hit.id: hit.score for hit in journal.ask(QUESTION, k=20)}
    hits = journal.ask(QUESTION, k=5, **filters)
    assert 1 <= len(hits) <= 4
    assert [hit.score for hit in hits] == pytest.approx([unfiltered[hit.id] for hit in hits], abs=1e-3)
    assert all(abs(hit.score) not in (0.0, 1.0) for hit in hits)
