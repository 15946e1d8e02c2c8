"""Asking a running server instead of loading models: what makes a warm `retriever ask` cost a process start.

A server is only asked once it has proved it is this index's own: `server.json` names a port and a pid, but the
server may have died and another process (another user's, say) may listen on that port now, with the pid reused.
So before the question or the secret leaves this process, the server must answer a fresh random nonce with
HMAC(secret, nonce), which only the process that wrote the record can; then every request carries the secret
(Authorization: Bearer), without which the server answers nothing but 401.

Any failure to reach a proven server for the same notes and index means "no server", and the caller answers
in-process; only an answer the proven server gives (including its one-line error) counts, and an answer that is
not one (garbled, cut off) is no answer either. Imports only the standard library (and reading/notes.py, records.py).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RetrieverError
from ..reading.notes import Library
from . import records
from .loading import LOAD_SECONDS
from .updates import MAX_WAIT

HEALTH_SECONDS = 10.0  # a loading server answers late: its load holds the interpreter for a second at a time
MAX_REPLY = 256 << 20  # what is read of an answer: a stranger's endless one must not fill the memory
POLL_SECONDS = 0.3  # between looks at a building server's progress
PROOF_CONTEXT = b"retriever server proof\0"
Tell = Callable[[str], None]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (an error), never followed: the question goes to the proven server or nowhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# No proxy either: http_proxy would otherwise carry the question and the secret off to the proxy.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)


def proof(token: str, nonce: str) -> str:
    """What only the holder of `token` can answer to `nonce`."""
    return hmac.new(token.encode(), PROOF_CONTEXT + nonce.encode(), hashlib.sha256).hexdigest()


def exchange(url: str, route: str, payload: Any, token: str | None, timeout: float) -> tuple[int, Any] | None:
    """The status and JSON (None if not JSON) of one request; None when nothing answered at all."""
    data = None if payload is None else json.dumps(payload, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(f"{url}{route}", data=data, headers=headers)
    try:
        with OPENER.open(request, timeout=timeout) as response:
            status, body = response.status, response.read(MAX_REPLY)
    except urllib.error.HTTPError as exc:
        try:
            status, body = exc.code, exc.read(MAX_REPLY)
        except (OSError, http.client.HTTPException):
            return exc.code, None
    except (OSError, ValueError, http.client.HTTPException):  # URLError, refused, reset, timed out, bad status line
        return None
    try:
        return status, json.loads(body)
    except (ValueError, RecursionError):
        return status, None


@dataclass(frozen=True)
class Connection:
    """A server's address and secret, from its record."""

    url: str
    token: str

    def proven(self) -> bool | None:
        """True when the server holds the secret; False when something else answers there; None when nothing
        does (in time)."""
        nonce = secrets.token_urlsafe(24)
        got = exchange(self.url, f"/proof?nonce={nonce}", None, None, HEALTH_SECONDS)
        if got is None:
            return None
        status, data = got
        said = data.get("proof") if isinstance(data, dict) else None
        return status == 200 and isinstance(said, str) and hmac.compare_digest(said, proof(self.token, nonce))

    def call(self, route: str, payload: dict[str, Any] | None = None, timeout: float = 300) -> dict[str, Any] | None:
        """The server's JSON answer, None when none came or it was not one; the server's error becomes a
        RetrieverError."""
        got = exchange(self.url, route, payload, self.token, timeout)
        if got is None:
            return None
        status, data = got
        if not isinstance(data, dict):
            return None
        if status == 200:
            return data
        if isinstance(data.get("error"), str):
            raise RetrieverError(" ".join(data["error"].split()))
        return None


def connect(
    index_dir: Path, notes: Library | Path, tell: Tell | None = None, exclude: int | None = None
) -> Connection | None:
    """The proven server recorded for this index, if it serves the same notes folder (and is not the process
    `exclude`). A record whose port answers without the proof is not our server's: it is removed, and `tell` says
    so."""
    path = records.address(index_dir)
    record = records.read(path)
    if record is None or record.notes != Library.of(notes).identity() or record.pid == exclude:
        return None
    connection = Connection(record.url, record.token)
    proven = connection.proven()
    if proven is False:
        records.remove(path, record.pid)
        records.leave(record.pid)
        if tell is not None:
            tell(f"{path} names {record.url}, where another process answers, not this index's server; answering here")
    return connection if proven else None


def ask_server(
    index_dir: Path,
    notes: Library | Path,
    method: str,
    payload: dict[str, Any],
    tell: Tell | None = None,
    show: Callable[[object], None] | None = None,
) -> dict[str, Any] | None:
    """The proven server's answer, None when there is none. `show` gets the server's progress events while it
    loads or builds for this question."""
    connection = connect(index_dir, notes, tell)
    if connection is None:
        return None
    with watching(connection, show):
        if not ready(connection):
            return None
        return connection.call(f"/{method}", payload)


def send_update(
    index_dir: Path,
    notes: Library | Path,
    request: dict[str, Any],
    tell: Tell | None = None,
    show: Callable[[object], None] | None = None,
    exclude: int | None = None,
) -> dict[str, Any] | None:
    """The report of an update (`{"full": …, "encoders": […] or null}`) built by the proven server of this index
    (retriever.serving.updates), as `index --json` prints it; None when there is no server, it declines, or it went away
    before the build was done (the caller then builds in its own process, under the same writer lock). A build the
    server ran and failed is its one-line RetrieverError. `show` gets the build's progress events meanwhile."""
    connection = connect(index_dir, notes, tell, exclude)
    if connection is None:
        return None
    with watching(connection, show):
        if not ready(connection):
            return None
        queued = connection.call("/index", request)
        number = queued.get("update") if queued else None
        if queued is not None and isinstance(queued.get("declined"), str) and tell is not None:
            tell(f"the server of {index_dir} does not build this update ({queued['declined']}); building here")
        if type(number) is not int:
            return None
        try:
            return finished(connection, number, index_dir, tell)
        except KeyboardInterrupt:
            if tell is not None:
                tell(f"the server of {index_dir} goes on with the update it started; `retriever stop` ends it")
            raise


def finished(connection: Connection, number: int, index_dir: Path, tell: Tell | None) -> dict[str, Any] | None:
    """The report of update `number` once the server has built it; None if the server went away. The server
    answers when the update ends (or after MAX_WAIT s), so the end is known at once; an answer of "building"
    that came sooner than that (a server that does not wait) is asked again only after POLL_SECONDS."""
    while True:
        asked = time.monotonic()
        state = connection.call(f"/update?id={number}&wait={MAX_WAIT}", timeout=HEALTH_SECONDS + MAX_WAIT)
        if state is None:
            if connection.proven():
                time.sleep(POLL_SECONDS)
                continue  # there, but slow to answer while it builds
            if tell is not None:
                tell(f"the server of {index_dir} went away during the update; building here")
            return None
        if state.get("state") == "done" and isinstance(state.get("report"), dict):
            return state["report"]
        if state.get("state") == "failed" and isinstance(state.get("error"), str):
            raise RetrieverError(state["error"])
        if state.get("state") not in ("queued", "building"):
            return None  # not an answer: built here instead, which finds done whatever the server did
        if time.monotonic() - asked < MAX_WAIT / 2:
            time.sleep(POLL_SECONDS)


def ready(connection: Connection) -> bool:
    """Whether the server answers questions. One still loading its models is waited for (within LOAD_SECONDS),
    since loading them here would take as long; one whose load failed, or that went away, is none."""
    deadline = time.monotonic() + LOAD_SECONDS
    while (health := connection.call("/health", timeout=HEALTH_SECONDS)) is not None:
        if health.get("status") != "loading" or time.monotonic() > deadline:
            return health.get("status") == "ok"
        time.sleep(0.05)
    return False


@contextmanager
def watching(connection: Connection, show: Callable[[object], None] | None) -> Iterator[None]:
    """While the block runs, the server's progress events, as they come, to `show`: from the start of its load
    if it is loading, else from now (a rebuild this question sets off)."""
    if show is None:
        yield
        return
    first = progress(connection, None)
    if first is None:
        yield
        return
    events, since = first
    for event in events:
        show(event)
    stop = threading.Event()

    def poll() -> None:
        nonlocal since
        while True:
            stopping = stop.wait(POLL_SECONDS)
            got = progress(connection, since)
            if got is not None:
                events, since = got
                for event in events:
                    show(event)
            if stopping or got is None:
                return

    thread = threading.Thread(target=poll, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def progress(connection: Connection, since: int | None) -> tuple[list[object], int] | None:
    """The server's events from `since` and the number to ask from next; with no `since`, those of a load in
    progress, else none."""
    got = connection.call("/progress" + ("" if since is None else f"?since={since}"), timeout=HEALTH_SECONDS)
    if got is None or type(got.get("next")) is not int or not isinstance(got.get("events"), list):
        return None
    if since is None and got.get("status") != "loading":
        return [], got["next"]
    return got["events"], got["next"]
