"""Property-based checks of the loader and chunker: any bytes, any text, no crash, and the invariants hold."""

from __future__ import annotations

import tempfile
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retriever.reading.chunking import ChunkerSettings, chunk_note, parts_of, split_sections
from retriever.reading.notes import MAX_NOTE_BYTES, Note, normalise, scan_notes

LINES = st.lists(
    st.one_of(
        st.text(max_size=80),
        st.builds(lambda n, t: "#" * n + " " + t, st.integers(1, 7), st.text(max_size=30)),
        st.builds(lambda t: "- " + t, st.text(max_size=60)),
        st.sampled_from(["```", "", "   ", "-----", "\r", "\x00", "\ufeff", "ᄇ\u1162"]),
    ),
    max_size=40,
)


def words(text: str) -> int:
    return len(text.split())


@settings(max_examples=300, deadline=None)
@given(LINES)
def test_chunks_cover_real_lines_and_respect_the_budget(lines: list[str]) -> None:
    text = normalise("\n".join(lines))
    note = Note("n.md", text)
    total = len(text.split("\n"))
    chunker = ChunkerSettings(max_tokens=12, part_tokens=6)
    for section in split_sections(note):
        assert 1 <= section.start_line <= section.end_line <= total
        assert any(ch.isalnum() for ch in section.body)
    for chunk in chunk_note(note, chunker, words):
        assert 1 <= chunk.start_line <= chunk.end_line <= total
        assert chunk.text.strip()
        assert words(chunk.text) <= chunker.max_tokens  # words never exceed the budget, the heading aside
        parts = parts_of(chunk, 0, chunker, words)
        assert parts
        ends = [0] + [p.end for p in parts]  # in order, apart, inside the chunk, each with words
        assert all(prev <= p.start < p.end <= len(chunk.text) for prev, p in zip(ends, parts))
        assert all(chunk.text[p.start : p.end].strip() for p in parts)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.from_regex(r"[a-z가-힣]{1,8}\.(md|txt)", fullmatch=True), st.binary(max_size=300), max_size=6)
)
def test_any_bytes_are_either_a_normalised_note_or_skipped_by_name(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, data in files.items():
            (root / unicodedata.normalize("NFC", name)).write_bytes(data)
        scan = scan_notes(root)
        seen = {n.path for n in scan.notes} | {path for path, _ in scan.skipped}
        assert seen == set(scan.stamps) == {p.name for p in root.iterdir()}
        assert all(unicodedata.is_normalized("NFC", n.text) and "\r" not in n.text for n in scan.notes)


def test_ten_thousand_tiny_files_are_all_read(tmp_path: Path) -> None:
    for i in range(10_000):
        folder = tmp_path / f"d{i % 100}"
        folder.mkdir(exist_ok=True)
        (folder / f"{i}.md").write_text(f"## 질문 {i}\n- 답 {i}\n", encoding="utf-8")
    scan = scan_notes(tmp_path)
    assert len(scan.notes) == 10_000 and not scan.skipped


def test_an_oversized_file_is_skipped_by_name_without_being_read(tmp_path: Path) -> None:
    (tmp_path / "dump.txt").write_bytes(b"x" * (MAX_NOTE_BYTES + 1))
    (tmp_path / "note.md").write_text("## 질문\n- 답\n", encoding="utf-8")
    scan = scan_notes(tmp_path)
    assert [n.path for n in scan.notes] == ["note.md"]
    assert scan.skipped == [("dump.txt", "larger than 2 MB (RETRIEVER_MAX_NOTE_MB raises it)")]
