"""What a build commits and what answers from it: the same scores from every process, no generation that cannot
be read, embedding work that survives an interrupted build, and reads that never write."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import cli

from retriever import Retriever

QUESTION = "배치 사이즈는 어떻게 정하나요?"


def test_the_process_that_built_answers_with_the_scores_of_a_fresh_one(repo_notes: Path, tmp_path: Path) -> None:
    """A build loads the int8 passage graph; the question must still be embedded as a fresh reader embeds it."""
    index = tmp_path / "index"
    retriever = Retriever(repo_notes, index, models=["e5"])
    retriever.index()
    here = [hit.to_json() for hit in retriever.ask(QUESTION, k=3, explain=True)]
    where = ["--notes", str(repo_notes), "--index", str(index)]
    result = cli("ask", QUESTION, *where, "-k", "3", "--explain", "--no-server", "--json")
    assert result.returncode == 0, result.stderr
    fresh = json.loads(result.stdout)["results"]
    assert [(h["id"], h["score"], h["explain"]) for h in here] == [(h["id"], h["score"], h["explain"]) for h in fresh]
