"""`retriever serve` against requests no friendly client sends: a web page's (foreign Host or Origin, a form's
content type), forged lengths and bodies, floods of half-sent requests, bugs, hang-ups, and a server killed
without the chance to remove its address file."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, make_notes, wait_for
from test_serve import QUESTION

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from flood import asked, burst, flooded

from retriever import Library
from retriever.serving import records
from retriever.serving import server as server_module
from retriever.serving.client import Connection, ask_server, connect, ready
from retriever.serving.loading import Loading
from retriever.serving.records import ADDRESS_FILE
from retriever.serving.server import HOST, MAX_BODY, MAX_K, Server, make_server
from retriever.serving.updates import Updates

pytestmark = pytest.mark.slow  # a real `retriever serve` process


@dataclass(frozen=True)
class Served:
    notes: Path
    index: Path
    port: int
    token: str
    log: Path  # the server's stderr


def start(notes: Path, index: Path, log: Path, model_cache: Path) -> tuple[subprocess.Popen[bytes], Connection]:
    """`retriever serve` on a free port (building the index with e5 first) and its address, once it answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRIEVER_") or k == "RETRIEVER_RUN_DIR"}
    env |= {"RETRIEVER_CACHE_DIR": str(model_cache), "HF_HUB_OFFLINE": "1"}
    command = ["serve", "--notes", str(notes), "--index", str(index), "--encoders", "e5", "--port", "0"]
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "retriever", *command], stderr=stderr, env=env)
    server = wait_for(lambda: connect(index, notes) if process.poll() is None else pytest.fail(log.read_text()))
    assert ready(server)  # loaded
    return process, server


def port_of(server: Connection) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[Served]:
    """One server for the module: each start loads the models."""
    root = tmp_path_factory.mktemp("served")
    notes, index, log = make_notes(root / "notes"), root / "index", root / "stderr.txt"
    process, server = start(notes, index, log, model_cache)
    try:
        yield Served(notes, index, port_of(server), server.token, log)
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture
def api(served: Served) -> Iterator[Served]:
    """The module's server, which must write nothing to its stderr during the test: no traceback, no log."""
    before = served.log.read_text()
    yield served
    assert served.log.read_text() == before


def exchange(
    port: int, method: str, path: str, headers: dict[str, str | None], body: bytes = b""
) -> tuple[int, dict[str, Any]]:
    """One request with exactly these headers (None drops one; http.client adds none), and the status and JSON
    it got back."""
    connection = http.client.HTTPConnection(HOST, port, timeout=20)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            if value is not None:
                connection.putheader(name, value)
        connection.endheaders(body or None)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


TOKEN = "a-token-only-its-user-can-read"  # of the servers run in this process


def post(
    port: int, body: bytes, path: str = "/ask", token: str = TOKEN, **changes: str | None
) -> tuple[int, dict[str, Any]]:
    """A POST as the client sends it, but for the headers changed (Content_Type names Content-Type)."""
    headers = {
        "Host": f"{HOST}:{port}",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Authorization": f"Bearer {token}",
    }
    return exchange(port, "POST", path, headers | {name.replace("_", "-"): v for name, v in changes.items()}, body)


def get(port: int, path: str = "/status", token: str = TOKEN, **changes: str | None) -> tuple[int, dict[str, Any]]:
    return exchange(port, "GET", path, {"Host": f"{HOST}:{port}", "Authorization": f"Bearer {token}"} | changes)


def refused(answer: tuple[int, dict[str, Any]], status: int) -> bool:
    """Refused with this status and nothing but a one-line error."""
    code, payload = answer
    return code == status and list(payload) == ["error"] and "\n" not in payload["error"]


ASK = json.dumps({"question": QUESTION, "k": 2}).encode()


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"Host": "evil.example:{port}"},
        {"Host": "127.0.0.1.evil.example:{port}"},
        {"Host": "localhost.evil.example"},
        {"Host": ""},
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1.evil.example:{port}"},
        {"Origin": "null"},
        {"Origin": "http://localhost:1"},
        {"Origin": "http://127.0.0.1:1"},
        {"Origin": "https://127.0.0.1:{port}"},
        {"Origin": "http://localhost:{port}.evil.example"},
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_foreign_host_or_origin_is_refused(api: Served, headers: dict[str, str], method: str) -> None:
    forged = {name: value.format(port=api.port) for name, value in headers.items()}
    answer = get(api.port, token=api.token, **forged) if method == "GET" else post(api.port, ASK, api.token, **forged)
    assert refused(answer, 403)


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "localhost"},
        {"Host": "localhost:{port}"},
        {"Host": "[::1]:{port}"},
        {"Host": "127.0.0.1"},
        {"Origin": "http://localhost:{port}"},
        {"Origin": "http://127.0.0.1:{port}"},
        {"Origin": "http://[::1]:{port}"},
    ],
)
def test_loopback_names_are_served(api: Served, headers: dict[str, str]) -> None:
    forged = {name: value.format(port=api.port) for name, value in headers.items()}
    status, payload = get(api.port, token=api.token, **forged)
    assert status == 200 and payload["chunks"] == 2


def test_the_client_and_a_json_charset_are_served(api: Served) -> None:
    answer = ask_server(api.index, api.notes, "similar", {"question": QUESTION, "k": MAX_K, "explain": True})
    assert answer is not None and 1 <= len(answer["results"]) <= 2
    status, payload = post(api.port, ASK, token=api.token, Content_Type="application/json; charset=utf-8")
    assert status == 200 and len(payload["results"]) == 2


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp"],
)
def test_a_post_must_be_json(api: Served, content_type: str | None) -> None:
    assert refused(post(api.port, ASK, token=api.token, Content_Type=content_type), 415)


@pytest.mark.parametrize(
    ("length", "status"),
    [("-1", 400), ("abc", 400), ("+5", 400), ("1_0", 400), ("", 400), (None, 411), (str(MAX_BODY + 1), 413)],
)
def test_a_forged_length_is_refused_before_the_body_is_read(api: Served, length: str | None, status: int) -> None:
    # no body: the server must not wait for one
    assert refused(post(api.port, b"", token=api.token, Content_Length=length), status)


@pytest.mark.parametrize(
    "body",
    [
        *(f'{{"question": "q", "k": {k}}}' for k in ("Infinity", "-Infinity", "NaN", "1e309", '"x"', "0", "-1")),
        *(f'{{"question": "q", "k": {k}}}' for k in ("true", "null", "2.5", "1000000000", str(MAX_K + 1))),
        "[" * 100_000,
        '{"question": ' * 10_000,
        "[]",
        '"q"',
        "{}",
        "",
        '{"question": "q"',
        '{"question": 5}',
        '{"question": "q", "mode": 5}',
        '{"question": "q", "mode": "sideways"}',
        '{"question": "q", "explain": "yes"}',
        '{"question": "\\ud800"}',
        '{"question": "batch \\udc80 size"}',
    ],
)
@pytest.mark.parametrize("path", ["/ask", "/similar"])
def test_a_bad_body_is_a_400(api: Served, body: str, path: str) -> None:
    assert refused(post(api.port, body.encode(), path, api.token), 400)


def test_bytes_that_are_not_utf8_are_a_400(api: Served) -> None:
    assert refused(post(api.port, b'{"question": "\xff"}', token=api.token), 400)


class Broken:
    """In place of a Service: a bug in /status, after a pause a client can hang up in; its update queue stays empty
    (/health asks whether an update builds)."""

    def __init__(self) -> None:
        self.updates = Updates(lambda full: {})

    def status(self) -> dict[str, Any]:
        time.sleep(0.3)
        raise ValueError("a bug\nin two lines")


@contextmanager
def running() -> Iterator[Server]:
    """The server in this process, over a Broken service: for what needs no models but the server's own code."""
    server = make_server(Loading.of(Broken()), 0, TOKEN)  # type: ignore[arg-type]
    thread = threading.Thread(target=asyncio.run, args=(server.run(),))
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join()


def test_a_bug_is_a_500_and_a_hang_up_is_silent(capfd: pytest.CaptureFixture[str]) -> None:
    with running() as server:
        port = server.port
        assert refused(get(port), 500)
        with socket.create_connection((HOST, port)) as hanging_up:
            hanging_up.sendall(f"GET /status HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            time.sleep(0.1)  # the server is in Broken.status now, and will answer to a reset connection
            hanging_up.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
    assert capfd.readouterr().err == ""


HALF_SENT = (
    f"GET /health HTTP/1.1\r\nHost: {HOST}\r\n".encode(),
    f'POST /ask HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\nContent-Length: 99\r\n\r\n{{"q'.encode(),
)


def ended(connection: socket.socket, wait: float) -> bytes | None:
    """What the server said before it closed the connection, if it closed it within `wait` seconds."""
    said, deadline = b"", time.monotonic() + wait
    while select.select([connection], [], [], max(0.0, deadline - time.monotonic()))[0]:
        try:
            chunk = connection.recv(4096)
        except ConnectionResetError:
            return said
        if not chunk:
            return said
        said += chunk
    return None


def closed(connection: socket.socket, wait: float) -> bool:
    """Whether the server closed the connection within `wait` seconds, without a word."""
    return ended(connection, wait) == b""


def busy(connection: socket.socket) -> bool:
    """Whether the server has already answered 503 and closed: what a connection crowded out gets."""
    return (ended(connection, 0) or b"").startswith(b"HTTP/1.1 503 ")


def test_half_sent_requests_are_bounded_and_time_out(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "REQUEST_SECONDS", 2.0)
    monkeypatch.setattr(server_module, "MAX_PER_CLIENT", 8)
    with running() as server:
        stalled = [socket.create_connection((HOST, server.port)) for _ in range(40)]
        for n, connection in enumerate(stalled):
            connection.sendall(HALF_SENT[n % 2])
        time.sleep(0.3)
        assert [busy(connection) for connection in stalled] == [True] * 32 + [False] * 8  # the oldest went first
        trickling = socket.create_connection((HOST, server.port))
        started = time.monotonic()
        for byte in HALF_SENT[0]:  # a byte every 0.1 s: each read is quick, the request never whole
            trickling.sendall(bytes([byte]))
            if closed(trickling, 0.1):
                break
        assert 1.5 < time.monotonic() - started < 3.5  # the deadline is for the whole request, not for each read
        assert Connection(f"http://{HOST}:{server.port}", TOKEN).call("/health", timeout=1)["status"] == "ok"
        assert all(ended(connection, 3) is not None for connection in stalled[32:])  # time up, or crowded out
        for connection in [*stalled, trickling]:
            connection.close()
    assert capfd.readouterr().err == ""


def test_floods_of_slow_and_idle_connections_leave_questions_answered(api: Served) -> None:
    """64 clients sending a request a byte at a time and 1 000 connections opened at once and left idle: a
    question asked all the while, past the request deadline, is answered within 2 s each time."""
    with flooded(api.port):
        took = asked(api.port, api.token, QUESTION, server_module.REQUEST_SECONDS + 3)
    assert len(took) > 20 and all(seconds is not None and seconds < 2.0 for seconds in took), took


def test_a_thousand_requests_at_once_are_all_answered(api: Served) -> None:
    assert burst(api.port, api.token, "/health", 1000, QUESTION) == {200: 1000}
    assert burst(api.port, api.token, "/ask", 200, QUESTION) == {200: 200}


def test_the_record_of_a_dead_server_is_removed(tmp_path: Path) -> None:
    notes, index = make_notes(tmp_path / "notes"), tmp_path / "index"
    gone = subprocess.Popen(["sleep", "0"])
    gone.wait()
    for pid, kept in ((os.getpid(), True), (gone.pid, False)):  # a live pid's record stays: its server may be busy
        record = records.Record(f"http://{HOST}:9", pid, Library.of(notes).identity(), str(index), TOKEN, 0)
        records.write(index / ADDRESS_FILE, record)
        assert ask_server(index, notes, "ask", {"question": QUESTION}) is None
        assert (index / ADDRESS_FILE).exists() is kept


def test_a_killed_server_leaves_ask_working_and_its_record_removed(tmp_path: Path, model_cache: Path) -> None:
    notes, index = make_notes(tmp_path / "notes"), tmp_path / "index"
    process, _ = start(notes, index, tmp_path / "stderr.txt", model_cache)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert (index / ADDRESS_FILE).exists()  # it had no chance to remove it
    run = cli("ask", QUESTION, "--notes", str(notes), "--index", str(index), "--json")
    assert run.returncode == 0 and json.loads(run.stdout)["results"], run.stderr
    assert not (index / ADDRESS_FILE).exists()


@pytest.mark.parametrize(
    "body",
    [
        "[]",
        '{"full": "yes"}',
        '{"full": 1}',
        '{"encoders": "e5"}',
        '{"encoders": []}',
        '{"encoders": [5]}',
        '{"encoders": [""]}',
        f'{{"encoders": {json.dumps(["e5"] * 17)}}}',
        '{"full": false, "colour": "red"}',
        "[" * 100_000,
    ],
)
def test_a_bad_update_is_a_400_and_builds_nothing(api: Served, body: str) -> None:
    before = (api.index / "CURRENT").read_text()
    assert refused(post(api.port, body.encode(), "/index", api.token), 400)
    assert (api.index / "CURRENT").read_text() == before


@pytest.mark.parametrize("number", ["", "x", "-1", "1" * 19, "%D9%A1"])
def test_a_bad_update_number_is_a_400(api: Served, number: str) -> None:
    assert refused(get(api.port, f"/update?id={number}", api.token), 400)
