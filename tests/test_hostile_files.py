"""Odd entries in a notes folder (loops, pipes, dangling links, unreadable or badly named files, deep trees) are
skipped with a reason, never an exception or a hang, and never make every question re-index."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import make_notes

from retriever.errors import RetrieverError
from retriever.reading.notes import NoteScan, notes_changed, read_note, scan_notes

# Root ignores permission bits; without these two capabilities it obeys them like anyone else.
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
SCAN = """
import json, sys
from pathlib import Path
from retriever.reading.notes import notes_changed, scan_notes
scan = scan_notes(Path(sys.argv[1]))
print(json.dumps({"notes": [n.path for n in scan.notes], "skipped": dict(scan.skipped),
                  "stamps": {p: s.sha256 for p, s in scan.stamps.items()},
                  "changed": notes_changed(Path(sys.argv[1]), scan.stamps)}))
"""


def run(*args: str, unprivileged: bool = False, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Python in its own process with a timeout, so a read that blocks fails the test instead of hanging the suite;
    unprivileged, permission bits bind it even when the tests run as root."""
    if (
        unprivileged
        and UNPRIVILEGED
        and (not shutil.which("setpriv") or subprocess.run([*UNPRIVILEGED, "true"], check=False).returncode)
    ):
        pytest.skip("running as root and setpriv cannot drop the capabilities that bypass permission bits")
    return subprocess.run(
        [*(UNPRIVILEGED if unprivileged else []), sys.executable, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def scanned_elsewhere(notes: Path, unprivileged: bool = False) -> dict:
    result = run("-c", SCAN, str(notes), unprivileged=unprivileged, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_settled(notes: Path, scan: NoteScan) -> None:
    """What a scan records is what the staleness check finds, so asking does not rebuild the index every time."""
    assert not notes_changed(notes, scan.stamps)
    assert {n.path for n in scan.notes} <= set(scan.stamps)


@pytest.fixture
def deep_notes(tmp_path: Path) -> Iterator[Path]:
    """The two notes and one more 1 100 folders down, made and removed a level at a time: mkdir(parents=True)
    and shutil.rmtree, which pytest cleans up with, recurse and would overflow."""
    notes = make_notes(tmp_path / "notes")
    folder = notes
    for _ in range(1100):
        folder = folder / "d"
        folder.mkdir()
    (folder / "deep.md").write_text("## 깊은 노트\n- 바닥\n", encoding="utf-8")
    yield notes
    (folder / "deep.md").unlink()
    while folder != notes:
        folder.rmdir()
        folder = folder.parent


def test_a_looping_file_link_is_skipped_as_a_loop(tmp_path: Path) -> None:
    notes = make_notes(tmp_path / "notes")
    (notes / "x.md").symlink_to("y.md")
    (notes / "y.md").symlink_to("x.md")
    scan = scan_notes(notes)
    assert [n.path for n in scan.notes] == ["a.md", "b.md"]
    assert dict(scan.skipped) == {"x.md": "symlink loop", "y.md": "symlink loop"}
    assert_settled(notes, scan)


def test_folder_links_inside_the_folder_are_named_and_not_followed(tmp_path: Path) -> None:
    notes = make_notes(tmp_path / "notes")
    (notes / "sub").mkdir()
    (notes / "sub/c.md").write_text("## 드롭아웃\n- 0.1부터\n", encoding="utf-8")
    (notes / "loop").symlink_to(notes, target_is_directory=True)
    (notes / "sub/up").symlink_to("..", target_is_directory=True)
    (notes / "alias").symlink_to("sub", target_is_directory=True)
    scan = scan_notes(notes)
    assert [n.path for n in scan.notes] == ["a.md", "b.md", "sub/c.md"]  # once each, under its real path
    assert dict(scan.skipped) == {
        "loop": "symlink loop (a link to a folder it is in)",
        "sub/up": "symlink loop (a link to a folder it is in)",
        "alias": "link to a folder inside the notes folder (not followed: its notes are read where they are)",
    }
    assert_settled(notes, scan)


def test_links_leading_outside_the_folder_are_named(tmp_path: Path) -> None:
    notes = make_notes(tmp_path / "notes")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/secret.md").write_text("secret", encoding="utf-8")
    (notes / "secret.md").symlink_to(tmp_path / "outside/secret.md")
    (notes / "elsewhere").symlink_to(tmp_path / "outside", target_is_directory=True)
    scan = scan_notes(notes)
    assert [n.path for n in scan.notes] == ["a.md", "b.md"]
    assert dict(scan.skipped) == {
        "elsewhere": "link leads outside the notes folder",
        "secret.md": "link leads outside the notes folder",
    }
    assert_settled(notes, scan)


def test_names_that_are_not_utf8_are_skipped_and_shown_printable(tmp_path: Path) -> None:
    notes = make_notes(tmp_path / "notes")
    (notes / os.fsdecode(b"\xff.md")).write_text("## 제목\n", encoding="utf-8")
    (notes / os.fsdecode(b"dir\xfe")).mkdir()
    (notes / os.fsdecode(b"dir\xfe") / "c.md").write_text("## 제목\n", encoding="utf-8")
    scan = scan_notes(notes)
    assert [n.path for n in scan.notes] == ["a.md", "b.md"]
    assert dict(scan.skipped) == {"\\xff.md": "name is not valid UTF-8", "dir\\xfe": "name is not valid UTF-8"}
    json.dumps(scan.skipped, ensure_ascii=False).encode("utf-8")  # printable and writable, as warnings and JSON
    assert_settled(notes, scan)


def test_a_named_pipe_is_never_opened(tmp_path: Path) -> None:
    notes = make_notes(tmp_path / "notes")
    os.mkfifo(notes / "x.md")
    scanned = scanned_elsewhere(notes)  # reading the pipe would block: the subprocess's timeout fails the test
    assert scanned["notes"] == ["a.md", "b.md"]
    assert scanned["skipped"] == {"x.md": "not a regular file"}
    assert not scanned["changed"]
    with pytest.raises(RetrieverError, match="no note 'x.md'"):
        read_note(notes, "x.md")


def test_a_very_deep_folder_is_walked_without_recursion(deep_notes: Path) -> None:
    scan = scan_notes(deep_notes)
    assert [n.path for n in scan.notes] == ["a.md", "b.md", "d/" * 1100 + "deep.md"]
    assert_settled(deep_notes, scan)


def test_unreadable_files_and_folders_are_skipped_yet_stamped(tmp_path: Path) -> None:
    notes = make_notes(tmp_path / "notes")
    (notes / "locked").mkdir()
    (notes / "locked/c.md").write_text("## 잠김\n", encoding="utf-8")
    (notes / "secret.md").write_text("## 비밀\n", encoding="utf-8")
    (notes / "locked").chmod(0)
    (notes / "secret.md").chmod(0)
    scanned = scanned_elsewhere(notes, unprivileged=True)
    assert scanned["notes"] == ["a.md", "b.md"]
    assert scanned["skipped"] == {
        "locked": "unreadable (Permission denied)",
        "secret.md": "unreadable (Permission denied)",
    }
    assert scanned["stamps"]["secret.md"] == ""  # listed, so stamped by size and mtime though never read
    assert not scanned["changed"]


def test_a_dangling_link_is_skipped_in_scan_and_staleness_alike(tmp_path: Path) -> None:
    notes = make_notes(tmp_path / "notes")
    (notes / "gone.md").symlink_to("missing.md")
    scan = scan_notes(notes)
    assert dict(scan.skipped) == {"gone.md": "broken link"}
    assert "gone.md" not in scan.stamps
    assert_settled(notes, scan)


@pytest.mark.parametrize("name", ["loop.md", "outside.md", "sub"])
def test_read_note_refuses_loops_outside_links_and_folders(tmp_path: Path, name: str) -> None:
    notes = make_notes(tmp_path / "notes")
    (notes / "loop.md").symlink_to("loop.md")
    (notes / "outside.md").symlink_to(Path(__file__))
    (notes / "sub").mkdir()
    with pytest.raises(RetrieverError, match=f"no note '{name}'"):
        read_note(notes, name)


def test_the_commands_name_every_odd_entry_and_do_not_reindex_forever(tmp_path: Path, deep_notes: Path) -> None:
    notes = deep_notes
    (tmp_path / "outside.md").write_text("outside", encoding="utf-8")
    (notes / "x.md").symlink_to("y.md")
    (notes / "y.md").symlink_to("x.md")
    (notes / "loop").symlink_to(notes, target_is_directory=True)
    (notes / "outside.md").symlink_to(tmp_path / "outside.md")
    (notes / "gone.md").symlink_to("missing.md")
    (notes / os.fsdecode(b"\xff.md")).write_text("## 제목\n", encoding="utf-8")
    os.mkfifo(notes / "pipe.md")
    (notes / "secret.md").write_text("## 비밀\n", encoding="utf-8")
    (notes / "secret.md").chmod(0)
    (notes / "locked").mkdir(mode=0)
    expected = {
        "x.md": "symlink loop",
        "y.md": "symlink loop",
        "loop": "symlink loop (a link to a folder it is in)",
        "outside.md": "link leads outside the notes folder",
        "gone.md": "broken link",
        "\\xff.md": "name is not valid UTF-8",
        "pipe.md": "not a regular file",
        "secret.md": "unreadable (Permission denied)",
        "locked": "unreadable (Permission denied)",
    }
    where = ["--notes", str(notes), "--index", str(tmp_path / "index")]

    built = run("-m", "retriever", "index", *where, "--encoders", "e5", unprivileged=True)
    assert built.returncode == 0, built.stderr
    assert "Traceback" not in built.stderr
    assert "indexed 3 notes" in built.stdout
    warnings = [line for line in built.stderr.splitlines() if line.startswith("warning:")]
    assert sorted(warnings) == sorted(f"warning: skipped {path}: {reason}" for path, reason in expected.items())

    asked = run("-m", "retriever", "ask", "배치사이즈", *where, "--no-server", unprivileged=True)
    assert asked.returncode == 0, asked.stderr
    assert "indexing" not in asked.stderr  # the folder the index saw is the folder it finds: no rebuild
    assert "배치사이즈" in asked.stdout

    doctor = run("-m", "retriever", "doctor", *where, unprivileged=True)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "up to date" in doctor.stdout
