"""Shared by several test files: a tiny notes folder and the real command run in its own process."""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self, TypeVar

import numpy as np
import pytest

from retriever.serving.client import Connection, connect, ready

T = TypeVar("T")

NOTES = {
    "a.md": "## 배치사이즈\n- GPU가 허용한 크게\n- 전체 데이터의 10%를 넘지 않게\n",
    "b.md": "## 학습률은 어떻게 정하나요?\n- 텍스트면 bert에 warm-up scheduler, lr=1e-4\n",
}


def make_notes(folder: Path) -> Path:
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def interruptible() -> None:
    """Ctrl-C's SIGINT as a terminal delivers it, for a child that a test interrupts: a suite started in the
    background (`cmd &` in a script, as CI may be) ignores SIGINT, and its children would inherit that and never
    stop (the interrupted-build test waited out its 120 s there)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in its own process, so it can be killed and run concurrently."""
    return subprocess.run(
        [sys.executable, "-m", "retriever", *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def wait_for(predicate: Callable[[], T], seconds: float = 120, what: str = "", every: float = 0.2) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(every)
    raise AssertionError(f"not within {seconds:g} s{': ' + what if what else ''}")


def mcp_over_stdio(notes: Path, index: Path, requests: list[str], ids: set[int]) -> dict[int, dict]:
    """Raw JSON-RPC lines to `retriever mcp` over stdio after the handshake, as any client may send them (escapes,
    deep nesting and all): the answers by id, once every id in `ids` has one, or a failed test after 120 s. Stdin stays
    open until then: at end of input the server stops, answered or not. The pipe is read with os.read, as select()
    sees it: a buffered readline took two answers that came together and select() then saw nothing left."""
    process = subprocess.Popen(
        [sys.executable, "-m", "retriever", "mcp", "--notes", str(notes), "--index", str(index)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
    handshake = [
        json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello}),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ]
    answers: dict[int, dict] = {}
    pending = b""
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("".join(line + "\n" for line in handshake + requests).encode())
        process.stdin.flush()
        deadline = time.monotonic() + 120
        while not ids <= answers.keys() and time.monotonic() < deadline:
            if select.select([process.stdout], [], [], 1)[0]:
                if not (chunk := os.read(process.stdout.fileno(), 1 << 16)):
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    answer = json.loads(line)
                    answers[answer.get("id")] = answer
    finally:
        process.kill()
        process.wait()
    assert ids <= answers.keys(), f"no answer to {sorted(ids - answers.keys())}"
    return answers


def kill_an_actor_mid_build(
    build: subprocess.Popen[str], actors: Callable[[], list[int]], seconds: float, build_seconds: float
) -> tuple[bool, str]:
    """SIGKILLs the first actor of a running Ray build once it has one; whether the build still ran when the actor
    was killed, and the build's stderr once it ends (it is killed if it outlives build_seconds)."""
    try:
        victim = wait_for(lambda: actors()[:1], seconds, "an actor of the build")[0]
        time.sleep(2)  # into its model load or its first steps: both are the build's, and both are retried
        killed_while_building = build.poll() is None
        os.kill(victim, signal.SIGKILL)
        _, stderr = build.communicate(timeout=build_seconds)
    finally:
        if build.poll() is None:
            build.kill()
    return killed_while_building, stderr


@contextmanager
def serving(notes: Path, index: Path, *options: str) -> Iterator[tuple[Connection, subprocess.Popen[str]]]:
    """A real `retriever serve` on a free port, from when it has loaded until the block ends: its address and
    secret, its process."""
    where = ["--notes", str(notes), "--index", str(index), "--port", "0"]
    process = subprocess.Popen(
        [sys.executable, "-m", "retriever", "serve", *where, *options], stderr=subprocess.PIPE, text=True
    )
    try:
        server = wait_for(
            lambda: connect(index, notes) if process.poll() is None else pytest.fail(process.stderr.read())
        )
        assert ready(server)  # recorded as soon as it listens; ready once loaded
        yield server, process
    finally:
        process.terminate()
        process.wait(timeout=60)


def rewrite_manifest(generation: Path, change: Callable[[dict], object]) -> None:
    """Edit a generation's manifest and seal it with a matching checksum, as a buggy or hostile writer would: what
    the checks behind the checksum must still catch."""
    path = generation / "manifest.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    (generation / "manifest.sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest())


def rewrite_table(generation: Path, name: str, edit: Callable[[np.ndarray], np.ndarray]) -> None:
    """Edit one of a generation's metadata tables and seal it in the manifest, as a buggy or hostile writer would."""
    table = generation / name
    np.save(table, edit(np.load(table)))

    def reseal(data: dict) -> None:
        data["checksums"][name] = hashlib.sha256(table.read_bytes()).hexdigest()
        data["sizes"][name] = table.stat().st_size

    rewrite_manifest(generation, reseal)


class Hammer:
    """Calls fn from `threads` threads, over and over, for as long as the with-block runs, keeping what each call
    returned (in order of completion) and what any call raised: a race's evidence."""

    def __init__(self, fn: Callable[[], object], threads: int = 1) -> None:
        self.fn = fn
        self.results: list[object] = []
        self.failures: list[BaseException] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.results.append(self.fn())
            except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                self.failures.append(exc)

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
