"""Fusion must not lose what plain matching finds: a note quoted exactly stays in the top 3 in every mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from retriever import Retriever
from retriever.reading.chunking import split_sections
from retriever.reading.notes import scan_notes


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, repo_build: Path) -> tuple[Path, Path]:
    from conftest import copy_build

    return copy_build(repo_build, tmp_path_factory.mktemp("ranking"))


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_exact_quotes_of_a_heading_or_a_bullet_stay_in_the_top_3(indexed: tuple[Path, Path], mode: str) -> None:
    notes, index = indexed
    retriever = Retriever(notes, index, mode=mode)  # type: ignore[arg-type]
    sections = [s for note in scan_notes(notes).notes for s in split_sections(note)]
    lost = []
    for section in sections:
        longest_bullet = max(section.body.split("\n"), key=len).lstrip("- ")
        for quote in (section.title, longest_bullet):
            top = retriever.ask(quote, k=3)
            if not any(h.path == section.path and h.start_line == section.start_line for h in top):
                lost.append((quote, [h.heading for h in top]))
    assert lost == []


def test_explain_shows_every_channel_and_their_shares_add_up(indexed: tuple[Path, Path]) -> None:
    notes, index = indexed
    (hit,) = Retriever(notes, index).ask("What learning rate for BERT?", k=1, explain=True)
    assert hit.explain is not None and "bm25" in hit.explain
    assert sum(channel["contribution"] for channel in hit.explain.values()) == pytest.approx(hit.score, abs=1e-3)


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_a_corpus_larger_than_the_candidate_pool_still_ranks(indexed: tuple[Path, Path], mode: str) -> None:
    """The ANN stage gathers candidates once chunks outnumber the pool; a question matching no word still ranks
    in the dense channels, and finds nothing by words alone."""
    from dataclasses import replace

    notes, index = indexed
    retriever = Retriever(notes, index, mode=mode)  # type: ignore[arg-type]
    retriever.ranking = replace(retriever.ranking, candidates=4)
    assert len(retriever.ask("quantum chromodynamics", k=3)) == (0 if mode == "lexical" else 3)
    assert len(retriever.ask("배치 사이즈 GPU", k=3)) == 3
    if mode != "lexical":
        assert retriever.ask("What learning rate for BERT?", k=1)[0].heading.startswith(
            "딥러닝 모델에서 hyperparameter"
        )
