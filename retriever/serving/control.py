"""`retriever status` and `retriever stop`: the user's running servers, seen and ended.

A server holds its models (a gigabyte or more) for as long as it runs, so the user must be able to see every one,
and end it without `kill`. The registry (records.py) says which run; each is then asked, after it proved to be the
one the entry names, how it is (/health) and, to stop, to stop (POST /stop), so no other process is ever told
anything. One that does not answer (busy in its load) is sent SIGTERM instead, which it also takes as a stop.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import records
from .client import HEALTH_SECONDS, Connection

STOP_SECONDS = 60.0  # for a server told to stop to be gone: it finishes the question it is answering first


@dataclass(frozen=True)
class Seen:
    record: records.Record
    state: str  # ok, loading, failed, or "not answering"
    idle_seconds: float | None
    rss_bytes: int | None

    def to_json(self) -> dict[str, Any]:
        record = self.record
        return {
            "pid": record.pid,
            "kind": record.kind,
            "index": record.index,
            "notes": record.notes,
            "url": record.url,
            "state": self.state,
            "rss_bytes": self.rss_bytes,
            "idle_seconds": self.idle_seconds,
            "exits_after_idle_seconds": record.idle or None,
        }


def servers() -> list[Seen]:
    """Every server of this user that runs, as it is now. An entry whose pid lives but whose port answers without
    the proof is another process's now: it is dropped."""
    seen = []
    for record in records.running():
        connection = Connection(record.url, record.token)
        proven = connection.proven()
        if proven is False:
            records.leave(record.pid)
            continue
        health = connection.call("/health", timeout=HEALTH_SECONDS) if proven else None
        idle = health.get("idle_seconds") if health else None
        state = str(health.get("status")) if health else "not answering"
        seen.append(Seen(record, state, idle if isinstance(idle, (int, float)) else None, rss(record.pid)))
    return seen


def rss(pid: int) -> int | None:
    """Resident memory, from /proc (Linux); None elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def same_index(record: records.Record, index: Path) -> bool:
    return Path(record.index) == index.resolve()


def stop(record: records.Record) -> bool:
    """Ask the server to stop, and wait until it is gone (its records with it); False if it is still there."""
    connection = Connection(record.url, record.token)
    proven = connection.proven()
    if proven is False:  # another process listens there now: the server is gone, its entry stale
        records.leave(record.pid)
        return True
    if not (proven and connection.call("/stop", {}, timeout=HEALTH_SECONDS)):
        if not serving(record):
            return False  # not a retriever server any more, as far as can be told: not ours to signal
        try:
            os.kill(record.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline:
        if not records.alive(record.pid) or not records.entered(record.pid):
            return True
        time.sleep(0.1)
    return False


def serving(record: records.Record) -> bool:
    """Whether the process is the retriever server the entry names (`serve`, `mcp`), by its command line (Linux):
    a silent entry's pid may have been given to another program since its server was killed."""
    try:
        words = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return record.kind.encode() in words and any(word.endswith(b"retriever") for word in words)
