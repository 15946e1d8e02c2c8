"""The background server a cold `retriever ask` starts, as compilers keep a daemon: the first question of an index
still pays the load, and later ones, each in a new process, cost a process start and one request, until the server
has had no request for RETRIEVER_IDLE seconds (default 600) and exits.

It is `retriever serve --port 0 --idle N`: loopback only, behind serve's guards and its secret, detached from the
terminal (a session of its own, so closing the terminal or Ctrl-C in it leaves the server alone), its output in
INDEX/daemon.log (0600: it names the page's URL with the secret). It holds a gigabyte or more, so it is never
started unseen: the ask that starts it says so, for which index and how to stop it, and `retriever status` lists
it. It runs as `python -P`, so a `retriever/` folder in the working folder (a clone's parent, say) cannot stand in
for the installed package. One per index: an ask holds INDEX/.daemon.lock while it looks for a server and starts
one, and serve records itself in server.json as soon as it listens, before it loads, so an ask arriving during the
load waits for that server rather than starting another.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from ..errors import RetrieverError
from ..reading.notes import Library
from . import records
from .client import Tell

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


def start_daemon(index: Path, notes: Library, tell: Tell) -> bool:
    """Start the background server for this index unless one runs, and say so. True once a server is recorded
    (it may still be loading); False when none could be started, and the question is answered in this process."""
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
        if records.read(records.address(index)) is not None:
            return True  # started by another ask meanwhile, or one of other notes holds the index: not ours to start
        process = spawn(index, notes, idle)
        tell(
            f"starting a background server for {index} (pid {process.pid}), to answer the next questions warm; it "
            f"exits after {idle:g} s without one (RETRIEVER_IDLE). `retriever status` lists servers, "
            f"`retriever stop {index}` stops it, --no-daemon starts none"
        )
        deadline = time.monotonic() + RECORD_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            found = records.read(records.address(index))
            if found is not None and found.pid == process.pid:
                return True
            time.sleep(0.02)
        tell(f"the background server did not start ({last_line(index / LOG_FILE)}); answering here")
        return False


def last_line(log: Path) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError as exc:
        return f"its log {log} is unreadable: {exc.strerror}"
    return f"{lines[-1]}; see {log}" if lines else f"no word in {log}"


def spawn(index: Path, notes: Library, idle: float) -> subprocess.Popen[bytes]:
    """`retriever serve` for this index, detached. Notes of several collections come from the same retriever.toml,
    read from the same working folder and environment."""
    where = ["--notes", str(notes.lone_folder)] if notes.lone_folder is not None else []
    command = [sys.executable, "-P", "-m", "retriever", "serve", "--index", str(index), *where]
    descriptor = os.open(index / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, records.PRIVATE)
    os.fchmod(descriptor, records.PRIVATE)  # made by an older version, perhaps, with the default mode
    with os.fdopen(descriptor, "wb") as log:
        return subprocess.Popen(
            [*command, "--port", "0", "--idle", f"{idle:g}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
