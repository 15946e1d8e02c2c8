"""Writers of a Milvus store, on Milvus Lite: the writer lock (taken by what the server holds, waited for, taken
over from a dead holder, shown and released by doctor) and publishing a staged build (to any name, with no model
loaded when nothing is new, its time counted)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import Timeout
from helpers import cli

from retriever.errors import RetrieverError
from retriever.local.store import IndexStore
from retriever.milvus.lock import HOLDER, Holder, lock_schema
from retriever.milvus.store import MilvusStore

pytestmark = pytest.mark.slow  # Milvus Lite servers and writers killed mid-build

pytest.importorskip("milvus_lite")


def store(db: Path, index: Path) -> MilvusStore:
    return MilvusStore(str(db), IndexStore(index))


def leave_lock(db: Path, holder: Holder) -> None:
    """The lock as a build that died holding it leaves it."""
    left = store(db, db.parent / "other")
    left.client.create_collection(left.lock_name, schema=lock_schema(holder))
    left.client.alter_collection_properties(left.lock_name, properties={HOLDER: holder.text})
    left.close()


def test_a_second_writer_waits_for_the_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("retriever.milvus.lock.POLL", 0.1)
    db = tmp_path / "notes.db"
    first, second = store(db, tmp_path / "a"), store(db, tmp_path / "b")  # two machines' staging folders
    held = first.lock()
    held.acquire(timeout=0)
    waiting = second.lock()
    with pytest.raises(Timeout):  # held: the build says it waits, then waits
        waiting.acquire(timeout=0)
    holder = second.lock_holder()
    assert holder is not None and holder.running() and "running" in holder.describe()
    started = time.monotonic()
    with pytest.raises(RetrieverError, match="another build is writing to Milvus store .* pid"):
        waiting.acquire(timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    threading.Timer(0.5, held.release).start()
    waiting.acquire(timeout=10)  # taken once the first lets go
    assert second.lock_holder() == waiting.mine
    waiting.release()
    assert second.lock_holder() is None
    first.close()


def test_a_dead_holder_is_taken_over_and_doctor_releases_a_remote_one(repo_notes: Path, tmp_path: Path) -> None:
    db, index = tmp_path / "store" / "notes.db", tmp_path / "index"
    db.parent.mkdir()
    common = ["--notes", str(repo_notes), "--index", str(index), "--store", str(db)]
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_here = Holder(socket.gethostname(), int(gone.stdout), time.time(), "dead")
    leave_lock(db, dead_here)
    built = cli("index", *common, "--encoders", "e5")
    assert built.returncode == 0, built.stderr  # taken over: its holder no longer runs on this machine

    elsewhere = Holder("build-host-7", 4242, time.time() - 600, "beef")
    leave_lock(db, elsewhere)
    doctor = cli("doctor", *common, "--json")
    assert doctor.returncode == 1, doctor.stderr
    report = json.loads(doctor.stdout)
    assert report["fix"] == f"retriever doctor --store {db} --release-lock"
    assert any("pid 4242 on build-host-7 (on another machine)" in f["message"] for f in report["findings"])
    waited = cli("index", *common, env={"RETRIEVER_LOCK_TIMEOUT": "1"})
    assert waited.returncode == 1 and "--release-lock" in waited.stderr, waited.stderr
    released = cli("doctor", *common, "--release-lock")
    assert released.returncode == 0 and "released the writer lock" in released.stdout, released.stderr
    assert "no build holds" in cli("doctor", *common, "--release-lock").stdout
    assert cli("doctor", *common).returncode == 0


def test_a_staged_build_publishes_to_a_new_name_with_nothing_embedded(repo_notes: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    common = ["--notes", str(repo_notes), "--index", str(index), "--encoders", "e5", "--json", "--timings"]
    first = cli("index", *common, "--store", str(tmp_path / "first.db"))
    assert first.returncode == 0 and json.loads(first.stdout)["embedded"] > 0, first.stderr
    again = cli("index", *common, "--store", str(tmp_path / "second.db"))  # another name, the same staging
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["embedded"] == 0 and report["added"] == 0 and not report["up_to_date"]
    assert "model load" not in again.stderr and "published the index" in again.stderr  # no model was loaded
    publish_ms = float(next(line for line in again.stderr.splitlines() if "publish:" in line).split()[-2])
    assert report["seconds"] >= publish_ms / 1000  # the reported time counts the publish
    same = cli("index", *common, "--store", str(tmp_path / "second.db"))
    assert json.loads(same.stdout)["up_to_date"], same.stderr  # already live there: nothing written
    answer = cli(
        "ask",
        "배치 사이즈",
        "--notes",
        str(repo_notes),
        "--index",
        str(index),
        "--store",
        str(tmp_path / "second.db"),
        "--no-server",
    )
    assert answer.returncode == 0 and "kaggle.md" in answer.stdout, answer.stderr
