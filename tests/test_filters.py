"""Filters narrow the search itself: path globs, tags (front matter and inline), dates (front matter, else the
file's mtime), through the API, the CLI, HTTP and MCP, with one line for every mistake."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from helpers import cli

from retriever import Retriever, RetrieverError

QUESTION = "배치 사이즈는 어떻게 정하나요?"
JOURNAL = {  # dated in front matter, tagged inline; about batches only in passing
    f"journal/2024-0{m}.md": f"---\ndate: 2024-0{m}-15\n---\n# {m}월 일기\n오늘 산책을 했다. 배치 이야기는 없었다. #일기 #Life/Walk\n"
    for m in range(1, 7)
}
WORK = {  # about batch size itself, tagged in front matter, dated by mtime
    "work/batch.md": "---\ntags: [ml, 실험]\n---\n# 배치 사이즈\n배치 사이즈는 GPU 메모리가 허용하는 만큼 크게 정한다.\n",
    "work/lr.md": "---\ntags: [ml]\n---\n# 학습률\n학습률은 warm-up 후 줄인다. 배치 사이즈와 함께 조정한다.\n",
    "work/code.md": "# 코드\n```\n#notatag\n```\n`#alsonot` 배치 크기 계산 코드. #3 은 이슈 번호다.\n",
}
OLD = datetime(2020, 1, 1).timestamp()


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("filters")
    notes = root / "notes"
    for name, text in {**JOURNAL, **WORK}.items():
        (notes / name).parent.mkdir(parents=True, exist_ok=True)
        (notes / name).write_text(text, encoding="utf-8")
    os.utime(notes / "work/lr.md", (OLD, OLD))  # no front-matter date: dated by its file
    Retriever(notes, root / "index", models=["e5"]).index()
    return notes, root / "index"


@pytest.fixture
def api(library: tuple[Path, Path]) -> Retriever:
    return Retriever(*library, models=["e5"])


def paths(hits) -> list[str]:
    return [hit.path for hit in hits]


def test_filters_apply_inside_the_search_not_to_its_top_k(api: Retriever) -> None:
    unfiltered = paths(api.ask(QUESTION, k=3))
    assert all(p.startswith("work/") for p in unfiltered)  # the journal is no answer to this question
    found = paths(api.ask(QUESTION, k=5, path="journal/"))
    assert len(found) == 5 and all(p.startswith("journal/") for p in found)  # k results, all below the top 3
    # more matching chunks than candidates per channel (k never exceeds them: 100 against 200): each channel's
    # candidates are the filter's best, scored exactly, and none from outside it
    api.ranking = replace(api.ranking, candidates=3)
    narrow = paths(api.ask(QUESTION, k=3, path=["journal/2024-0[1-4].md"]))
    assert len(narrow) == 3 and set(narrow) < {f"journal/2024-0{m}.md" for m in range(1, 5)}


def test_tags_come_from_front_matter_and_the_text_outside_code(api: Retriever) -> None:
    assert set(paths(api.ask(QUESTION, k=10, tag="ml"))) == {"work/batch.md", "work/lr.md"}
    assert paths(api.ask(QUESTION, k=10, tag=["ml", "실험"])) == ["work/batch.md"]  # every tag given
    assert len(api.ask(QUESTION, k=10, tag="#일기")) == 6  # inline, written with its #
    assert len(api.ask(QUESTION, k=10, tag="life")) == 6  # a nested tag, case aside
    hit = api.ask(QUESTION, k=1, path="work/code.md")[0]
    assert hit.tags == ()  # `#notatag` in code, `#alsonot` in inline code and the issue number `#3` are no tags
    for tag in ("notatag", "alsonot", "3"):
        with pytest.raises(RetrieverError, match="no indexed note has the tag"):
            api.ask(QUESTION, tag=tag)


def test_dates_come_from_front_matter_else_the_files_mtime(api: Retriever) -> None:
    spring = paths(api.ask(QUESTION, k=10, since="2024-03-01", until="2024-04-30"))
    assert sorted(spring) == ["journal/2024-03.md", "journal/2024-04.md"]
    assert paths(api.ask(QUESTION, k=10, until="2021-01-01")) == ["work/lr.md"]  # its mtime: 2020
    assert "work/lr.md" not in paths(api.ask(QUESTION, k=10, since="2024-01-01"))
    assert api.ask(QUESTION, k=10, since="2030-01-01") == []


@pytest.mark.parametrize(
    ("filters", "words"),
    [
        ({"path": "nowhere/*"}, "matches no indexed note"),
        ({"since": "2024-13-01"}, "YYYY-MM-DD"),
        ({"since": "2024-05-01", "until": "2024-01-01"}, "is after until"),
        ({"colour": "red"}, "unknown filter 'colour'"),
        ({"collection": "work"}, "holds one folder, no collections"),
        ({"tag": ""}, "non-empty string"),
        ({"path": 5}, "non-empty string"),
    ],
)
def test_bad_filters_are_one_clear_error(api: Retriever, filters: dict, words: str) -> None:
    with pytest.raises(RetrieverError, match=words):
        api.ask(QUESTION, **filters)


def test_the_cli_filters_and_refuses_in_one_line(library: tuple[Path, Path]) -> None:
    notes, index = library
    where = ["--notes", str(notes), "--index", str(index), "--encoders", "e5", "--json"]
    asked = cli("ask", QUESTION, *where, "--path", "journal/", "--tag", "일기", "--since", "2024-05-01", "-k", "9")
    assert asked.returncode == 0, asked.stderr
    assert sorted(h["path"] for h in json.loads(asked.stdout)["results"]) == [
        "journal/2024-05.md",
        "journal/2024-06.md",
    ]
    similar = cli("similar", QUESTION, *where, "--tag", "ml", "-k", "9")
    assert {h["path"] for h in json.loads(similar.stdout)["results"]} == {"work/batch.md", "work/lr.md"}
    glob = cli("ask", QUESTION, *where, "--path", "nowhere/*")
    assert glob.returncode == 1 and glob.stderr.count("\n") == 1 and "matches no indexed note" in glob.stderr
    date = cli("ask", QUESTION, *where, "--until", "yesterday")
    assert date.returncode == 2 and "YYYY-MM-DD" in date.stderr and "Traceback" not in date.stderr
