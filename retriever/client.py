"""Asking a running server instead of loading models: what makes a warm `retriever ask` cost a process start.

Imports only the standard library (and notes.py, which needs no more). Any failure to reach a server for the same notes and index means "no server",
and the caller answers in-process; only an answer the server gives (including its one-line error) counts.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .errors import RetrieverError
from .loading import LOAD_SECONDS
from .notes import Library

ADDRESS_FILE = "server.json"  # under the index folder, written by `retriever serve`
HEALTH_SECONDS = 10.0  # a loading server answers late: its load holds the interpreter for a second at a time


def server_url(index_dir: Path, notes: Library | Path) -> str | None:
    """The address of a live server recorded for this index, if it serves the same notes folder."""
    found = recorded(index_dir)
    if found is None:
        return None
    url, served, _ = found
    return url if served == Library.of(notes).identity() and url.startswith("http://127.0.0.1:") else None


def recorded(index_dir: Path) -> tuple[str, str, int] | None:
    """The url, notes and pid of a live server recorded for this index, whatever it serves. A record whose server
    died without removing it (killed) is removed here, so no later call waits on a connect to nothing."""
    path = index_dir / ADDRESS_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        url, served, pid = str(record["url"]), str(record["notes"]), int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        return None
    if not alive(pid):
        remove_address(path, pid)
        return None
    return url, served, pid


def alive(pid: int) -> bool:
    """Whether a process has this id (Unix: signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        pass  # there is one, another user's
    return True


def remove_address(path: Path, pid: int) -> None:
    """Only the record of this pid: another server may have taken the index over since."""
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def call(url: str, route: str, payload: dict[str, Any] | None = None, timeout: float = 300) -> dict[str, Any] | None:
    """The server's JSON answer, None when no server answers; a server-side error becomes a RetrieverError."""
    data = None if payload is None else json.dumps(payload, ensure_ascii=False).encode()
    request = urllib.request.Request(f"{url}{route}", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]
        except (ValueError, KeyError, TypeError):
            return None  # not our server
        raise RetrieverError(message) from None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def ask_server(index_dir: Path, notes: Library | Path, method: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    url = server_url(index_dir, notes)
    if url is None or not ready(url):
        return None
    return call(url, f"/{method}", payload)


def ready(url: str) -> bool:
    """Whether the server answers questions. One still loading its models is waited for (within LOAD_SECONDS),
    since loading them here would take as long; one whose load failed, or that went away, is none."""
    deadline = time.monotonic() + LOAD_SECONDS
    while (health := call(url, "/health", timeout=HEALTH_SECONDS)) is not None:
        if health.get("status") != "loading" or time.monotonic() > deadline:
            return health.get("status") == "ok"
        time.sleep(0.05)
    return False
