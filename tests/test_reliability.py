"""Crashes, concurrent builds, damaged indexes and hostile notes: the previous index always survives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import Hammer, cli, make_notes, rewrite_table
from typer.testing import CliRunner

from retriever import Retriever, RetrieverError
from retriever.cli import app
from retriever.index import integrity
from retriever.local.store import CURRENT


def current(index: Path) -> str:
    return (index / CURRENT).read_text()


@pytest.mark.parametrize("point", ["embedding", "writing", "swap"])
def test_a_build_killed_at_any_point_leaves_the_previous_index_answering(small: tuple[Path, Path], point: str) -> None:
    notes, index = small
    before = current(index)
    (notes / "c.md").write_text("## 새 노트\n- 드롭아웃은 0.1부터\n", encoding="utf-8")
    killed = cli("index", "--full", "--notes", str(notes), "--index", str(index), env={"RETRIEVER_FAILPOINT": point})
    assert killed.returncode == -9, killed.stderr
    assert current(index) == before
    old = Retriever(notes, index, auto_update=False).ask("배치 사이즈", k=1)
    assert old[0].heading == "배치사이즈"

    recovered = cli("index", "--notes", str(notes), "--index", str(index), "--json")
    assert recovered.returncode == 0, recovered.stderr
    assert json.loads(recovered.stdout)["chunks"] == 3
    assert not list(index.glob(".tmp-*")) and len(list(index.glob("gen-*"))) <= 2
    assert Retriever(notes, index).ask("dropout", k=1)[0].heading == "새 노트"


def test_two_builds_at_once_both_finish_and_leave_one_consistent_index(small: tuple[Path, Path]) -> None:
    notes, index = small
    args = ("index", "--full", "--notes", str(notes), "--index", str(index))
    with subprocess.Popen([sys.executable, "-m", "retriever", *args], stderr=subprocess.PIPE, text=True) as first:
        second = cli(*args)
        first.wait(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    loaded = Retriever(notes, index).store.load()
    assert len(loaded.manifest.chunks) == 2


def test_a_held_lock_fails_fast_with_one_line_when_told_to(small: tuple[Path, Path]) -> None:
    notes, index = small
    lock = Retriever(notes, index).store.lock()
    with lock:
        blocked = cli("index", "--notes", str(notes), "--index", str(index), env={"RETRIEVER_LOCK_TIMEOUT": "0.5"})
    assert blocked.returncode == 1
    assert "another retriever is still building" in blocked.stderr.strip().splitlines()[-1]
    assert "Traceback" not in blocked.stderr


def test_questions_during_a_rebuild_see_a_whole_index(small: tuple[Path, Path]) -> None:
    notes, index = small
    reader = Retriever(notes, index, auto_update=False)
    reader.ask("배치 사이즈", k=1)  # models loaded before the race starts
    with Hammer(lambda: len(Retriever(notes, index, auto_update=False).ask("배치 사이즈", k=2))) as asking:
        for _ in range(2):
            assert cli("index", "--full", "--notes", str(notes), "--index", str(index)).returncode == 0
    assert not asking.failures and asking.results and set(asking.results) == {2}


def test_chunk_count_not_matching_vectors_is_reported(small: tuple[Path, Path]) -> None:
    notes, index = small
    gen = index / current(index)
    rewrite_table(gen, "meta.chunks.npy", lambda table: table[:-1])  # a writer that lost a chunk, and sealed it
    with pytest.raises(RetrieverError, match="inconsistent.*retriever index --full"):
        Retriever(notes, index).store.load()
    result = CliRunner().invoke(app, ["doctor", "--notes", str(notes), "--index", str(index)])
    assert result.exit_code == 1 and "broken" in result.stdout and "index --full" in result.stdout


def test_doctor_names_stale_notes_and_the_fix(small: tuple[Path, Path]) -> None:
    notes, index = small
    healthy = CliRunner().invoke(app, ["doctor", "--notes", str(notes), "--index", str(index), "--json"])
    assert healthy.exit_code == 0 and json.loads(healthy.stdout)["fix"] is None
    (notes / "a.md").write_text("## 배치사이즈\n- 바뀐 내용\n", encoding="utf-8")
    (notes / "b.md").unlink()
    report = json.loads(
        CliRunner().invoke(app, ["doctor", "--notes", str(notes), "--index", str(index), "--json"]).stdout
    )
    messages = [f["message"] for f in report["findings"] if f["level"] == "stale"]
    assert messages == ["1 note(s) removed since the build: b.md", "1 note(s) changed since the build: a.md"]
    assert report["fix"].startswith("retriever index ")


def test_large_files_are_sized_on_load_and_hashed_by_doctor(
    small: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    notes, index = small
    monkeypatch.setattr(integrity, "HASH_ON_LOAD_BYTES", 0)  # every file counts as large
    path = index / current(index) / "m0.parts.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, other content
    path.write_bytes(bytes(data))
    assert len(Retriever(notes, index, auto_update=False).ask("배치", k=1)) == 1  # a load checks sizes only
    doctor = CliRunner().invoke(app, ["doctor", "--notes", str(notes), "--index", str(index)])
    assert doctor.exit_code == 1 and "m0.parts.npy is missing or altered" in doctor.stdout


HOSTILE: dict[str, bytes] = {
    "empty.md": b"",
    "blank.md": b"   \n\t\n",
    "binary.md": b"\x89PNG\r\n\x1a\n\x00\x00",
    "latin1.md": "caf\xe9".encode("latin-1"),
    "utf16.md": "## 질문\n- 답".encode("utf-16"),
    "nul.txt": b"text\x00more",
    "crlf.md": "## 윈도우 줄바꿈\r\n- 크게\r\n".encode(),
    "emoji.md": "## 🚀 배포 🇰🇷\n- mixed 한글 English 日本語 ✅\n".encode(),
    "nfd.md": "## \u1107\u1162\u110e\u1175".encode() + "\n- 분해된 한글\n".encode(),
    "headings-only.md": b"# a\n## b\n### c\n",
    "long-line.md": ("긴 줄 " * 30000).encode(),
}


def test_hostile_notes_index_without_a_traceback_and_are_named(tmp_path: Path) -> None:
    notes = make_notes(tmp_path / "notes")
    for name, data in HOSTILE.items():
        (notes / name).write_bytes(data)
    (notes / "loop").symlink_to(notes, target_is_directory=True)
    (notes / "outside.md").symlink_to(Path("/etc/hostname"))
    result = CliRunner().invoke(
        app, ["index", "--notes", str(notes), "--index", str(tmp_path / "index"), "--encoders", "e5"]
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    for name in ("binary.md", "latin1.md", "utf16.md", "nul.txt"):
        assert f"skipped {name}: not UTF-8 text" in result.stderr
    found = Retriever(notes, tmp_path / "index").ask("전체 데이터의 10%", k=3)
    assert found[0].heading == "배치사이즈"
    nfd = Retriever(notes, tmp_path / "index").ask("분해된 한글", k=1)[0]
    assert nfd.heading == "배치" and nfd.path == "nfd.md"  # decomposed Hangul was normalised to NFC


@pytest.mark.parametrize("question", ["?!.,;:", "\x00\x07\x1b[31m", "가" * 100_000, "🚀🚀🚀"])
def test_hostile_questions_answer_or_fail_in_one_line(small: tuple[Path, Path], question: str) -> None:
    notes, index = small
    result = CliRunner().invoke(app, ["ask", question, "--notes", str(notes), "--index", str(index), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["results"]) == 2
