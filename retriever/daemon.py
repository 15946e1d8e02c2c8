"""The background server a cold `retriever ask` starts, as compilers keep a daemon: the first question of an index
still pays the load, and later ones, each in a new process, cost a process start and one request, until the server
has had no request for RETRIEVER_IDLE seconds (default 600) and exits.

It is `retriever serve --port 0 --idle N`: loopback only, behind serve's guards, detached from the terminal (a
session of its own, so closing the terminal or Ctrl-C in it leaves the server alone), its output in
INDEX/daemon.log. One per index: an ask holds INDEX/.daemon.lock while it looks for a server and starts one, and
serve records itself in server.json as soon as it listens, before it loads, so an ask arriving during the load
waits for that server rather than starting another.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from .client import recorded
from .errors import RetrieverError
from .notes import Library

IDLE_SECONDS = 600.0
LOCK_FILE = ".daemon.lock"
LOG_FILE = "daemon.log"
RECORD_SECONDS = 60.0  # for a started server to record its address, which it does before loading anything


def idle_seconds() -> float:
    value = os.environ.get("RETRIEVER_IDLE", "")
    try:
        seconds = float(value) if value else IDLE_SECONDS
    except ValueError:
        seconds = -1
    if not 0 < seconds < float("inf"):
        raise RetrieverError(f"RETRIEVER_IDLE must be a positive number of seconds, not {value!r}")
    return seconds


def start_daemon(index: Path, notes: Library) -> bool:
    """Start the background server for this index unless one runs. True once a server is recorded (it may still
    be loading); False when none could be started, and the question is answered in this process."""
    idle = idle_seconds()
    if not notes.exists():
        return False  # the answer in-process says what is missing
    try:
        index.mkdir(parents=True, exist_ok=True)
        lock = open(index / LOCK_FILE, "a")  # noqa: SIM115 - held across the start, closed below
    except OSError:
        return False  # an index this user cannot write: answered in-process, as it was built
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held while a server is started and records itself: seconds at most
        if recorded(index) is not None:
            return True  # started by another ask meanwhile, or one of other notes holds the index: not ours to start
        process = spawn(index, notes, idle)
        deadline = time.monotonic() + RECORD_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            found = recorded(index)
            if found is not None and found[2] == process.pid:
                return True
            time.sleep(0.02)
        return False


def spawn(index: Path, notes: Library, idle: float) -> subprocess.Popen[bytes]:
    """`retriever serve` for this index, detached. Notes of several collections come from the same retriever.toml,
    read from the same working folder and environment."""
    where = ["--notes", str(notes.lone_folder)] if notes.lone_folder is not None else []
    command = [sys.executable, "-m", "retriever", "serve", "--index", str(index), *where]
    with open(index / LOG_FILE, "wb") as log:
        return subprocess.Popen(
            [*command, "--port", "0", "--idle", f"{idle:g}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
