"""What a build commits and what answers from it: the same scores from every process, no generation that cannot
be read, embedding work that survives an interrupted build, and reads that never write."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli, interruptible, wait_for

from retriever import Retriever
from retriever.encoders import ModelSpec
from retriever.errors import RetrieverError
from retriever.index.generation import Generation, StoredIndex
from retriever.indexing.checkpoint import STEP

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


def write_coded_notes(folder: Path) -> Path:
    """Enough text for MIN_TRAIN pooled token vectors, so the index keeps its tokens as codes under a codebook."""
    folder.mkdir()
    for n in range(60):
        (folder / f"n{n}.md").write_text(
            f"# 메모 {n}\n\n## 질문 {n}은 무엇인가요?\n"
            + "".join(
                f"- {n}번째 메모의 {i}번째 답변: 배치 크기와 학습률 {n * i}를 함께 정합니다.\n" for i in range(6)
            ),
            encoding="utf-8",
        )
    return folder


@pytest.fixture(scope="module")
def coded_build(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Path:
    """Notes and their index with token codes, built once for the module; tests take copies."""
    root = tmp_path_factory.mktemp("coded")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RETRIEVER_CACHE_DIR", str(model_cache))
        patch.setenv("HF_HUB_OFFLINE", "1")
        Retriever(write_coded_notes(root / "notes"), root / "index", models=["e5"]).index()
    return root


@pytest.fixture
def coded(coded_build: Path, tmp_path: Path) -> tuple[Path, Path]:
    notes = Path(shutil.copytree(coded_build / "notes", tmp_path / "notes"))
    index = Path(shutil.copytree(coded_build / "index", tmp_path / "index"))
    assert Retriever(notes, index).store.load().codebook is not None
    return notes, index


def answers_afresh(notes: Path, index: Path) -> str:
    """The top path of a question from a new process's view of the index, which must not rebuild it."""
    return Retriever(notes, index, auto_update=False).ask("12번째 메모의 3번째 답변", k=1)[0].path


@pytest.mark.parametrize("change", ["delete", "rename", "copy"])
def test_a_build_that_embeds_nothing_new_keeps_the_codebook_of_its_codes(coded: tuple[Path, Path], change: str) -> None:
    notes, index = coded
    note = notes / "n5.md"
    if change == "delete":
        note.unlink()
    elif change == "rename":
        note.rename(notes / "renamed.md")
    else:
        shutil.copy(note, notes / "copy.md")
    report = Retriever(notes, index).index()
    assert report.embedded == 0  # every passage's vectors and tokens came from the old index
    loaded = Retriever(notes, index).store.load()
    assert loaded.codebook is not None and loaded.manifest.codebook
    assert answers_afresh(notes, index) == "n12.md"


def test_a_generation_that_cannot_answer_is_never_made_live(
    coded: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that loses the codebook (as one did) writes a generation whose codes nothing decodes: the check
    before CURRENT moves rejects it, says why in one line, and the index as it was answers on."""
    notes, index = coded
    before = (index / "CURRENT").read_text()
    encode = Generation.encode_segments

    def losing_the_codebook(self: Generation, old: StoredIndex | None, spec: ModelSpec) -> None:
        encode(self, old, spec)
        self.codebook = ""

    monkeypatch.setattr(Generation, "encode_segments", losing_the_codebook)
    (notes / "n5.md").unlink()
    with pytest.raises(RetrieverError) as failed:
        Retriever(notes, index).index()
    message = str(failed.value)
    assert "failed its check and was not made live" in message and "codebook" in message and "\n" not in message
    assert (index / "CURRENT").read_text() == before
    assert not list(index.glob(".tmp-gen-*")) and len(list(index.glob("gen-*"))) == 1
    assert answers_afresh(notes, index) == "n12.md"


@pytest.mark.parametrize("stop", ["SIGINT", "SIGKILL", "SIGKILL, checkpoint altered"])
def test_an_interrupted_first_build_keeps_what_it_embedded(tmp_path: Path, stop: str) -> None:
    """Stopped once its first step of texts is kept (held there, then signalled, as Ctrl-C or the OOM killer
    would), the build leaves no index, and the next embeds only the texts that step did not hold; a checkpoint
    file that does not match its record is never used."""
    notes, index = write_coded_notes(tmp_path / "notes"), tmp_path / "index"
    where = ["--notes", str(notes), "--index", str(index), "--encoders", "e5", "--json", "-q"]
    hold = {**os.environ, "RETRIEVER_HOLD": f"checkpoint:{tmp_path / 'never'}"}
    build = subprocess.Popen(
        [sys.executable, "-m", "retriever", "index", *where],
        env=hold,
        text=True,
        preexec_fn=interruptible,  # noqa: PLW1509 - this process starts no threads of its own
    )
    kept = index / "checkpoint"
    wait_for(lambda: list(kept.glob("*.json")) or build.poll() is not None)
    build.send_signal(getattr(signal, stop.split(",")[0]))
    assert build.wait(timeout=120) != 0
    assert not (index / "CURRENT").exists()
    if "altered" in stop:
        whole = next(kept.glob("*.whole.npy"))
        data = bytearray(whole.read_bytes())
        data[-1] ^= 0xFF
        whole.write_bytes(bytes(data))
    result = cli("index", *where)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["embedded"] == report["chunks"] - (0 if "altered" in stop else STEP)
    assert not kept.exists()  # its work is in the committed generation
    assert answers_afresh(notes, index) == "n12.md"


def snapshot(index: Path) -> dict[str, tuple[int, int, int]]:
    """Every file and folder of the index with its mtime, size and inode: any write shows."""
    stats = {p: p.stat() for p in index.rglob("*")}
    return {str(p.relative_to(index)): (s.st_mtime_ns, s.st_size, s.st_ino) for p, s in stats.items()}


def test_reads_never_write_the_index_even_when_the_notes_moved_on(small: tuple[Path, Path]) -> None:
    """get, info and doctor read the index as it is; only index, ask and similar bring it up to date."""
    notes, index = small
    (notes / "c.md").write_text("## 드롭아웃은?\n- 0.1에서 시작합니다\n", encoding="utf-8")
    before = snapshot(index)
    where = ["--notes", str(notes), "--index", str(index)]
    got = cli("get", "a.md", *where, "--json")
    assert got.returncode == 0, got.stderr
    assert "배치사이즈" in json.loads(got.stdout)["text"]
    missing = cli("get", "c.md", *where)
    assert missing.returncode == 1 and "notes changed since the index was built" in missing.stderr
    assert "retriever index" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    assert cli("info", *where).returncode == 0
    doctor = cli("doctor", *where)
    assert "c.md" in doctor.stdout and "stale" in doctor.stdout
    assert snapshot(index) == before


def test_a_passage_copied_within_the_notes_is_embedded_once(tmp_path: Path) -> None:
    """Every row is found by its key, so copies of a passage in one build need one pass between them: each copy was
    embedded, and a build of 7 passages of 3 texts made 7 passes."""
    notes = tmp_path / "notes"
    notes.mkdir()
    text = "## 배치 사이즈는 어떻게 정하나요?\n- GPU 메모리가 허용하는 만큼 크게\n\n## 드롭아웃은?\n- 0.1부터 시작\n"
    for name in ("a.md", "b.md", "c.md"):
        (notes / name).write_text(text, encoding="utf-8")
    (notes / "d.md").write_text("## 학습률은?\n- 1e-4\n", encoding="utf-8")
    index = tmp_path / "index"
    report = Retriever(notes, index, models=["e5"]).index()
    assert report.chunks == 7 and report.embedded == 3
    hits = Retriever(notes, index, models=["e5"]).ask("배치 사이즈", k=3)
    assert {hit.path for hit in hits} == {"a.md", "b.md", "c.md"} and len({hit.score for hit in hits}) == 1
