"""End to end through the API: real notes, the real default model, a real FAISS index in a temp folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retriever import Retriever
from retriever.index.manifest import SPANS
from retriever.index.tokencodes import token_floats
from retriever.indexing.indexer import collect
from retriever.local.loaded import LoadedIndex
from retriever.reading.notes import scan_notes


@pytest.fixture
def retriever(repo_notes: Path, tmp_path: Path) -> Retriever:
    return Retriever(repo_notes, tmp_path / "index")


@pytest.fixture
def built(repo_built: Path, tmp_path: Path) -> Retriever:
    return Retriever(repo_built, tmp_path / "index")


@pytest.mark.parametrize(
    ("question", "heading"),
    [
        ("배치 사이즈는 어떻게 정하나요?", "배치사이즈"),
        ("What learning rate do you use for BERT?", "hyperparameter"),
        ("GPU가 없으면 대회는 어떻게 하나요?", "GPU와 같은 장비"),
        ("How should a team split the work in a competition?", "업무분담"),
    ],
)
def test_ask_puts_the_right_note_first(built: Retriever, question: str, heading: str) -> None:
    hits = built.ask(question, k=3)
    assert heading in hits[0].heading, [h.heading for h in hits]
    assert hits[0].path == "kaggle.md"
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert [h.rank for h in hits] == [1, 2, 3]


def test_hit_points_at_the_lines_of_its_note(built: Retriever, repo_built: Path) -> None:
    (hit,) = built.ask("배치 사이즈", k=1)
    lines = (repo_built / hit.path).read_text(encoding="utf-8").split("\n")
    assert lines[hit.start_line - 1] == "## 배치사이즈"
    assert lines[hit.end_line - 1] == hit.text.split("\n")[-1]


def test_similar_ranks_the_notes_own_questions(built: Retriever) -> None:
    hits = built.similar("캐글 대회 처음 시작할 때 어떤 대회가 좋아요?", k=3)
    assert hits[0].question == "어떤 competition로 시작하면 좋을지?"
    assert "많은 사람들이 참여한 대회를 추천" in hits[0].text


def test_incremental_reindex_embeds_only_what_changed(repo_notes: Path, tmp_path: Path) -> None:
    retriever = Retriever(repo_notes, tmp_path / "index")
    first = retriever.index()
    assert (first.added, first.unchanged, first.removed) == (first.chunks, 0, 0)
    assert first.chunks == 16

    again = retriever.index()
    assert (again.added, again.unchanged, again.removed, again.embedded) == (0, 16, 0, 0)

    career = repo_notes / "career.md"
    career.write_text(
        career.read_text(encoding="utf-8").replace("- AI에 집중을 하는게 맞다고 봄", "- AI에 집중"), "utf-8"
    )
    (repo_notes / "extra.md").write_text("## 새 질문은?\n- 새 답변\n", encoding="utf-8")
    (repo_notes / "kaggle.md").rename(repo_notes / "renamed.md")
    edited = retriever.index()
    assert (edited.added, edited.unchanged, edited.removed) == (2, 15, 1)
    # one pass per model for the changed chunk and one for the new one (their parts and headings are pooled from
    # those passes); the renamed note costs nothing
    models = len(retriever.store.read_manifest().models)
    assert edited.embedded == 2 * models
    reused = retriever.store.load()

    full = retriever.index(full=True)
    assert (full.added, full.unchanged, full.removed) == (0, 17, 0)
    manifest = retriever.store.read_manifest()
    assert full.embedded == models * len(manifest.chunks)  # one pass per chunk and model, whatever its parts
    assert len(manifest.parts) > len(manifest.chunks) and manifest.questions
    # copied rows landed where the text now is: the same as embedding everything afresh
    fresh = retriever.store.load()
    for name in fresh.vectors:
        assert np.allclose(reused.stored(name, slice(None)), fresh.stored(name, slice(None)), atol=1e-4), name
    for part in range(len(fresh.manifest.parts)):
        mine, theirs = part_tokens(reused, part), part_tokens(fresh, part)
        assert mine.shape == theirs.shape and np.allclose(mine, theirs, atol=2e-3), part
    assert len(reused.segments) == 2  # the first build's tokens linked, the edit's new ones beside them


def part_tokens(index: LoadedIndex, part: int) -> np.ndarray:
    segment, start, stop = index.extras[SPANS][part]
    return token_floats(index.segments[segment][start:stop], index.codebook)


def test_ask_builds_a_missing_index_and_updates_a_stale_one(retriever: Retriever, repo_notes: Path) -> None:
    assert not retriever.store.exists()
    assert retriever.ask("배치 사이즈", k=1)[0].heading == "배치사이즈"
    assert retriever.staleness() is None
    (repo_notes / "new.md").write_text("## 드롭아웃 비율\n- 0.1에서 시작\n", encoding="utf-8")
    assert retriever.staleness() == "notes changed"
    assert retriever.ask("dropout rate?", k=1)[0].heading == "드롭아웃 비율"


def test_unchanged_notes_keep_their_chunks_without_being_chunked_again(
    repo_notes: Path, tmp_path: Path, encoder
) -> None:
    """And in the edited note, the chunks it had before keep their parts without being cut again: only the text
    that is new is read bullet by bullet and sentence by sentence."""
    retriever = Retriever(repo_notes, tmp_path / "index", models=["e5"])
    retriever.index()
    career = repo_notes / "career.md"
    before = career.read_text(encoding="utf-8")
    career.write_text(before + "\n## 새 질문\n- 새 답변\n", encoding="utf-8")
    scan = scan_notes(repo_notes)
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return encoder.count_tokens(text)

    reused = collect(scan, retriever.chunker, count, retriever.store.read_manifest())
    assert reused == collect(scan, retriever.chunker, encoder.count_tokens)  # same rows, same order
    kaggle = (repo_notes / "kaggle.md").read_text(encoding="utf-8")
    assert counted and not [t for t in counted if t in kaggle]  # only the edited note was chunked
    pieces = [t for t in counted if "\n" not in t]  # bullets and sentences, each counted to cut parts
    assert "- 새 답변" in pieces and not [t for t in pieces if t in before]  # only its new bullet was cut again


def test_token_segments_are_compacted_once_mostly_dead(small: tuple[Path, Path]) -> None:
    notes, index = small
    retriever = Retriever(notes, index, models=["e5"])
    bullets = "\n".join(f"- 긴 노트의 {i}번째 항목은 꽤 길게 적어 둔 설명이다" for i in range(30))
    (notes / "big.md").write_text(f"## 큰 노트\n{bullets}\n", encoding="utf-8")
    retriever.index()
    (notes / "big.md").unlink()
    retriever.index()  # what is left is a small share of the one segment: copied out, the segment dropped
    compacted = retriever.store.load()
    live = sum(int(stop - start) for _, start, stop in compacted.extras[SPANS])
    assert [len(segment) for segment in compacted.segments] == [live]
    retriever.index(full=True)
    fresh = retriever.store.load()
    for part in range(len(fresh.manifest.parts)):
        assert np.allclose(part_tokens(compacted, part), part_tokens(fresh, part), atol=2e-3)


def test_similar_ranks_only_questions_and_shows_one_passage(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    steps = "\n".join(f"- {i}단계: 주문 내역에서 환불 신청 버튼을 누르고 사유 {i}번을 골라 제출한다" for i in range(60))
    (notes / "faq.md").write_text(
        f"## 환불은 어떻게 받나요?\n{steps}\n\n## 배송은 얼마나 걸리나요?\n- 보통 사흘\n", encoding="utf-8"
    )
    (notes / "manual.md").write_text(
        "# 사용 설명서\n\n## Description\n\n환불 신청 방법과 절차를 설명한다.\n", encoding="utf-8"
    )
    retriever = Retriever(notes, tmp_path / "index", models=["e5"])
    hits = retriever.similar("환불 받는 방법이 궁금해요", k=5)
    # the manual's headings ask nothing: its section only fills the places the two questions leave, below them
    assert [hit.path for hit in hits] == ["faq.md", "faq.md", "manual.md"]
    assert hits[2].question == "사용 설명서 > Description" and hits[2].score < hits[1].score
    assert hits[0].question == "환불은 어떻게 받나요?"
    shown = hits[0].text.splitlines()
    assert 0 < len(shown) < 60 and all(line in steps.splitlines() for line in shown)  # one passage, not all 60
    assert hits[0].end_line - hits[0].start_line + 1 <= len(shown) + 1
