"""The loader: which files become notes, and how their text is normalised."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest

from retriever.errors import RetrieverError
from retriever.reading.notes import notes_changed, scan_notes


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_reads_md_and_txt_recursively_and_skips_hidden_and_other_files(tmp_path: Path) -> None:
    write(tmp_path / "n/a.md", "## 질문\n- 답")
    write(tmp_path / "n/sub/deeper/b.txt", "text")
    write(tmp_path / "n/.hidden/c.md", "hidden folder")
    write(tmp_path / "n/.d.md", "hidden file")
    write(tmp_path / "n/e.png", "not a note")
    scan = scan_notes(tmp_path / "n")
    assert [n.path for n in scan.notes] == ["a.md", "sub/deeper/b.txt"]
    assert scan.skipped == []


def test_invalid_utf8_and_binary_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    write(tmp_path / "n/good.md", "좋은 노트")
    write(tmp_path / "n/latin1.md", "caf\xe9".encode("latin-1"))
    write(tmp_path / "n/binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    scan = scan_notes(tmp_path / "n")
    assert [n.path for n in scan.notes] == ["good.md"]
    assert dict(scan.skipped) == {"latin1.md": "not UTF-8 text", "binary.txt": "not UTF-8 text"}
    assert set(scan.stamps) == {"good.md", "latin1.md", "binary.txt"}


def test_bom_crlf_and_decomposed_hangul_are_normalised(tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", "## 배치사이즈\r\n- 크게\r\n")
    write(tmp_path / "n/a.md", "\ufeff" + nfd)
    (note,) = scan_notes(tmp_path / "n").notes
    assert note.text == "## 배치사이즈\n- 크게\n"
    assert unicodedata.is_normalized("NFC", note.text)


def test_symlink_leading_outside_the_folder_is_not_followed(tmp_path: Path) -> None:
    write(tmp_path / "outside/secret.md", "secret")
    write(tmp_path / "n/inside.md", "inside")
    os.symlink(tmp_path / "outside/secret.md", tmp_path / "n/link.md")
    os.symlink(tmp_path / "outside", tmp_path / "n/linkdir")
    assert [n.path for n in scan_notes(tmp_path / "n").notes] == ["inside.md"]


def test_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(RetrieverError, match="notes folder not found"):
        scan_notes(tmp_path / "nope")


def test_change_detection_sees_edits_additions_and_deletions(tmp_path: Path) -> None:
    note = write(tmp_path / "n/a.md", "one")
    stamps = scan_notes(tmp_path / "n").stamps
    assert not notes_changed(tmp_path / "n", stamps)
    os.utime(note, ns=(1, 1))  # touched but identical content: not a change
    assert not notes_changed(tmp_path / "n", stamps)
    write(note, "two")
    assert notes_changed(tmp_path / "n", stamps)
    write(note, "one")
    write(tmp_path / "n/b.md", "new")
    assert notes_changed(tmp_path / "n", stamps)
    (tmp_path / "n/b.md").unlink()
    note.unlink()
    assert notes_changed(tmp_path / "n", stamps)


def test_repo_notes_are_the_seed_unchanged() -> None:
    repo = Path(__file__).resolve().parent.parent
    seed = repo.parent / "shared" / "seeds" / "000_b4903a1153fda4d3.txt"
    if not seed.exists():
        pytest.skip("the seed corpus is not beside this checkout")
    joined = (repo / "notes" / "kaggle.md").read_bytes() + (repo / "notes" / "career.md").read_bytes()
    assert joined == seed.read_bytes()
