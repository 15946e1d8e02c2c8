"""Servers answer before their models load, and a cold `ask` leaves a warm server behind: real processes, ordered
by a hold point (RETRIEVER_HOLD keeps the load waiting for a file) rather than by timing."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import anyio
import httpx2
import pytest
from helpers import NOTES, cli, make_notes, serving, wait_for
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from retriever import Library, RetrieverError
from retriever.serving import records
from retriever.serving.client import Connection, proof
from retriever.serving.records import ADDRESS_FILE

pytestmark = pytest.mark.slow  # real servers, started cold
QUESTION = "배치 사이즈는 얼마나 크게?"


def held(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The environment of a server whose load waits at its start until the returned file exists."""
    release = tmp_path / "release"
    return {**os.environ, "RETRIEVER_HOLD": f"load:{release}"}, release


def text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


async def held_session(session: ClientSession, release: Path) -> dict[str, Any]:
    """What a client sees before the load may start, then after it is let go."""
    seen: dict[str, Any] = {"hello": await session.initialize()}
    seen["tools"] = {tool.name for tool in (await session.list_tools()).tools}
    seen["status while loading"] = (await session.call_tool("status", {})).structured_content
    release.touch()
    seen["ask"] = await session.call_tool("ask", {"question": QUESTION, "k": 1})
    seen["status"] = (await session.call_tool("status", {})).structured_content
    return seen


def check_held(seen: dict[str, Any]) -> None:
    assert seen["tools"] == {"ask", "similar", "get", "status"}
    assert seen["status while loading"]["status"] == "loading"
    assert seen["ask"].structured_content["results"][0]["heading"] == "배치사이즈"
    assert seen["status"]["status"] == "ok" and seen["status"]["chunks"] == 2


def mcp_command(notes: Path, index: Path, *extra: str) -> list[str]:
    return ["-m", "retriever", "mcp", "--notes", str(notes), "--index", str(index), *extra]


def test_mcp_over_stdio_answers_initialize_and_tools_list_before_the_load(
    small: tuple[Path, Path], tmp_path: Path
) -> None:
    notes, index = small
    env, release = held(tmp_path)

    async def session() -> dict[str, Any]:
        params = StdioServerParameters(command=sys.executable, args=mcp_command(notes, index), env=env)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            return await held_session(client, release)

    check_held(anyio.run(session))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_mcp_over_http_answers_before_the_load(small: tuple[Path, Path], tmp_path: Path) -> None:
    notes, index = small
    env, release = held(tmp_path)
    port = free_port()
    command = [sys.executable, *mcp_command(notes, index, "--http", "--port", str(port))]
    token = "a-token-the-client-is-configured-with"
    process = subprocess.Popen(command, env={**env, "RETRIEVER_MCP_TOKEN": token}, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: process.poll() is None and listening(port))

        async def session() -> dict[str, Any]:
            async with (
                httpx2.AsyncClient(headers=bearer(token), timeout=httpx2.Timeout(30, read=300)) as http,
                streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http) as (read, write, *_),
                ClientSession(read, write) as client,
            ):
                return await held_session(client, release)

        check_held(anyio.run(session))
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_a_failed_load_is_each_tools_one_line_error(tmp_path: Path) -> None:
    async def session() -> list[CallToolResult]:
        params = StdioServerParameters(
            command=sys.executable, args=mcp_command(tmp_path / "missing", tmp_path / "index"), env=dict(os.environ)
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            return [await client.call_tool("ask", {"question": QUESTION}), await client.call_tool("status", {})]

    for result in anyio.run(session):
        assert result.is_error and "missing" in text(result) and "\n" not in text(result)


def recorded(index: Path) -> records.Record | None:
    return records.read(index / ADDRESS_FILE)


@contextmanager
def recorded_server(
    notes: Path, index: Path, env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[str], Connection]]:
    command = [sys.executable, "-m", "retriever", "serve", "--notes", str(notes), "--index", str(index), "--port", "0"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        found = wait_for(lambda: recorded(index) if process.poll() is None else pytest.fail(process.stderr.read()))
        yield process, Connection(found.url, found.token)
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_serve_records_its_address_and_says_loading_before_the_load(small: tuple[Path, Path], tmp_path: Path) -> None:
    notes, index = small
    env, release = held(tmp_path)
    with recorded_server(notes, index, env) as (_, server):
        assert server.call("/health")["status"] == server.call("/status")["status"] == "loading"
        release.touch()  # an ask that finds the server loading waits for it, then is answered by it
        asked = cli("ask", QUESTION, "--notes", str(notes), "--index", str(index), "--json", "--timings")
        assert asked.returncode == 0, asked.stderr
        assert "model load" not in asked.stderr and json.loads(asked.stdout)["results"][0]["heading"] == "배치사이즈"
        assert server.call("/health")["status"] == "ok" and server.call("/status")["chunks"] == 2


def test_serve_whose_load_fails_exits_with_one_line_and_no_address(tmp_path: Path) -> None:
    notes, index = tmp_path / "missing", tmp_path / "index"
    # The address is recorded while it listens, but the load may fail before anyone reads it: only the end counts.
    served = cli("serve", "--notes", str(notes), "--index", str(index), "--port", "0")
    assert served.returncode == 1, served.stderr
    last = served.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "missing" in last and "Traceback" not in served.stderr
    assert not (index / ADDRESS_FILE).exists()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_cold_ask_leaves_a_warm_server_that_the_next_ask_uses_then_exits_when_idle(
    small: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    notes, index = small
    monkeypatch.delenv("RETRIEVER_NO_DAEMON")
    monkeypatch.setenv("RETRIEVER_IDLE", "10")
    where = ["--notes", str(notes), "--index", str(index), "--json", "--timings"]
    first = cli("ask", QUESTION, *where)
    found = recorded(index)
    try:
        assert first.returncode == 0, first.stderr
        assert found is not None and found.url.startswith("http://127.0.0.1:")
        pid = found.pid
        assert os.getsid(pid) == pid != os.getsid(0)  # detached: a session of its own
        assert "serving" in (index / "daemon.log").read_text()

        second = cli("ask", QUESTION, *where)
        assert second.returncode == 0, second.stderr
        assert "model load" not in second.stderr and recorded(index) == found  # the same server answered
        assert json.loads(second.stdout) == json.loads(first.stdout)

        wait_for(lambda: gone(pid), 60)  # idle for 10 s: it ends and takes its address with it
        assert not (index / ADDRESS_FILE).exists()
    finally:
        if found is not None and not gone(found.pid):
            os.kill(found.pid, signal.SIGKILL)


@pytest.mark.parametrize("opt_out", ["RETRIEVER_NO_DAEMON=1", "--no-daemon", "--no-server"])
def test_opting_out_starts_no_server(small: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, opt_out: str) -> None:
    notes, index = small
    monkeypatch.delenv("RETRIEVER_NO_DAEMON")
    name, _, value = opt_out.partition("=")
    if value:
        monkeypatch.setenv(name, value)
    flags = [] if value else [opt_out]
    asked = cli("ask", QUESTION, "--notes", str(notes), "--index", str(index), "-k", "1", *flags)
    assert asked.returncode == 0, asked.stderr
    assert recorded(index) is None and not (index / ADDRESS_FILE).exists()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


NOBODY = """
import json, sys, urllib.request, urllib.error
try:
    open(sys.argv[2]).read()
    print("read the record")
except OSError:
    pass
for route, body in (("/ask", {"question": sys.argv[3]}), ("/get?id=a.md", None)):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(sys.argv[1] + route, data, {"Content-Type": "application/json"})
    try:
        print(urllib.request.urlopen(request, timeout=60).read().decode())
    except urllib.error.HTTPError as exc:
        print(exc.code, exc.read().decode())
"""


def test_only_the_user_who_started_a_server_can_ask_it(small: tuple[Path, Path]) -> None:
    notes, index = small
    with serving(notes, index) as (server, _):
        address = index / ADDRESS_FILE
        assert stat.S_IMODE(address.stat().st_mode) == 0o600  # the secret is this user's alone
        secret_line = NOTES["a.md"].splitlines()[1]
        for token in ("", "a-guess"):  # what another user can send: no token, or a wrong one
            for method, route, body in (
                ("POST", "/ask", {"question": QUESTION}),
                ("GET", "/get?id=a.md", None),
                ("POST", "/index", {"full": True}),  # a stranger can neither set off a build
                ("GET", "/update?id=1", None),  # nor read one's report
            ):
                status, answer = raw(server.url, method, route, body, bearer(token) if token else {})
                assert status == 401 and list(answer) == ["error"] and secret_line not in json.dumps(answer)
        assert raw(server.url, "POST", "/stop", {}, bearer("a-guess"))[0] == 401
        assert server.call("/health")["status"] == "ok"  # not stopped by a stranger
        with pytest.raises(RetrieverError, match="no update 1 here"):  # nor made to build
            server.call("/update?id=1")
        if os.getuid() == 0 and shutil.which("setpriv"):  # and as another uid for real, where it can be had
            nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-I", "-c"]
            seen = subprocess.run(
                [*nobody, NOBODY, server.url, str(address), QUESTION],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert seen.returncode == 0, seen.stderr
            assert "read the record" not in seen.stdout and seen.stdout.count("401 ") == 2, seen.stdout
            assert secret_line not in seen.stdout
        assert len(server.call("/ask", {"question": QUESTION})["results"]) == 2  # its user still can


def raw(url: str, method: str, route: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """One request with exactly these headers, past the client's checks: what any local process can send."""
    port = int(url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = None if body is None else json.dumps(body).encode()
    connection.request(method, route, data, {"Content-Type": "application/json", **headers})
    reply = connection.getresponse()
    return reply.status, json.loads(reply.read())


class Stranger(http.server.BaseHTTPRequestHandler):
    """Whatever listens at the recorded port instead of our server: it records every request and answers each
    with `reply` (status, body)."""

    seen: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []
    reply: ClassVar[tuple[int, bytes]] = (200, b"{}")
    token: ClassVar[str | None] = None  # a stranger that somehow knew the secret: its proof is right

    def answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Stranger.seen.append((self.command, self.path, dict(self.headers), body))
        status, data = Stranger.reply
        if self.token is not None and self.path.startswith("/proof"):
            status, data = 200, json.dumps({"proof": proof(self.token, self.path.split("nonce=")[1])}).encode()
        elif self.token is not None and self.path.startswith(("/health", "/progress")):
            status, data = 200, b'{"status": "ok", "events": [], "next": 0}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = answer

    def log_message(self, *args: object) -> None:
        pass


FORGED_HIT = json.dumps({"results": [{"rank": 1, "score": "high", "path": "a.md"}], "proof": "0" * 64}).encode()


@pytest.mark.parametrize(
    ("reply", "knows_secret"),
    [
        ((200, FORGED_HIT), False),  # a forged proof, and forged results
        ((500, b"<html>Internal Server Error</html>"), False),
        ((400, b'{"error": "forged: missing 2 required positional arguments"}'), False),
        ((200, FORGED_HIT), True),  # past the proof, a garbled answer is still no answer
    ],
)
def test_a_stranger_at_the_recorded_port_gets_no_question_and_no_secret(
    small: tuple[Path, Path], reply: tuple[int, bytes], knows_secret: bool
) -> None:
    notes, index = small
    secret = "our-secret-that-must-not-leave"
    Stranger.seen, Stranger.reply, Stranger.token = [], reply, secret if knows_secret else None
    stranger = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stranger)
    threading.Thread(target=stranger.serve_forever, daemon=True).start()
    try:  # a record of ours, its pid alive (this process), its port another process's
        url = f"http://127.0.0.1:{stranger.server_address[1]}"
        ours = records.Record(url, os.getpid(), Library.of(notes).identity(), str(index), secret, 0)
        records.write(index / ADDRESS_FILE, ours)
        asked = cli("ask", QUESTION, "--notes", str(notes), "--index", str(index), "--json")
    finally:
        stranger.shutdown()
        stranger.server_close()
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["results"][0]["heading"] == "배치사이즈"  # answered here, rightly
    assert "unexpected" not in asked.stderr and "forged" not in asked.stderr and "Traceback" not in asked.stderr
    assert len(asked.stderr.strip().splitlines()) == 1 and "answering here" in asked.stderr  # said once, why
    told = [(method, path) for method, path, _, _ in Stranger.seen]
    if knows_secret:
        assert ("POST", "/ask") in told
        return
    assert told == [("GET", told[0][1])] and told[0][1].startswith("/proof?nonce=")  # only the challenge
    assert all(secret not in str(headers) and not body for _, _, headers, body in Stranger.seen)
    assert QUESTION not in str(Stranger.seen)
    assert not (index / ADDRESS_FILE).exists()  # not our server's: the record is gone, a new one may start


def test_a_background_server_is_announced_shows_its_build_is_listed_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold ask from a folder holding a `retriever/` package of its own (a clone's parent, say): the background
    server is still the installed retriever, the terminal sees the build's progress, and status and stop work."""
    monkeypatch.delenv("RETRIEVER_NO_DAEMON")
    make_notes(tmp_path / "notes")
    (tmp_path / "retriever.toml").write_text('notes = "notes"\nindex = "index"\nencoders = "e5"\n', encoding="utf-8")
    (tmp_path / "retriever").mkdir()
    (tmp_path / "retriever" / "__init__.py").write_text("raise ImportError('a shadowing retriever/ folder')\n")
    index = tmp_path / "index"

    def run(*args: str) -> subprocess.CompletedProcess[str]:  # -P: this process is not the one under test
        command = [sys.executable, "-P", "-m", "retriever", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)

    first = run("ask", QUESTION, "--json")
    found = recorded(index)
    try:
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["results"][0]["heading"] == "배치사이즈"  # stdout is the JSON alone
        assert found is not None, first.stderr + (index / "daemon.log").read_text()
        assert f"starting a background server for index (pid {found.pid})" in first.stderr
        assert "retriever stop index" in first.stderr and "retriever status" in first.stderr
        assert "no index yet: indexing" in first.stderr and "embedded: " in first.stderr  # the build, seen here
        assert "model load" not in run("ask", QUESTION, "--timings").stderr  # the server answered
        assert stat.S_IMODE((index / "daemon.log").stat().st_mode) == 0o600

        listed = run("status", "--json")
        assert listed.returncode == 0, listed.stderr
        (server,) = json.loads(listed.stdout)["servers"]
        assert server["pid"] == found.pid and server["index"] == str(index.resolve()) and server["state"] == "ok"
        assert server["rss_bytes"] > 10 << 20 and 0 <= server["idle_seconds"] and "token" not in listed.stdout
        assert str(found.pid) in run("status").stdout

        stopped = run("stop")
        assert stopped.returncode == 0 and f"pid {found.pid}" in stopped.stdout, stopped.stderr
        wait_for(lambda: gone(found.pid), 60)
        assert not (index / ADDRESS_FILE).exists() and json.loads(run("status", "--json").stdout)["servers"] == []
    finally:
        if found is not None and not gone(found.pid):
            os.kill(found.pid, signal.SIGKILL)


def test_stop_all_stops_an_explicit_serve_too(small: tuple[Path, Path]) -> None:
    notes, index = small
    with serving(notes, index) as (_, process):
        stopped = cli("stop", "--all")
        assert stopped.returncode == 0 and f"pid {process.pid}" in stopped.stdout, stopped.stderr
        assert process.wait(timeout=60) == 0
    assert not (index / ADDRESS_FILE).exists() and not list((Path(os.environ["RETRIEVER_RUN_DIR"])).iterdir())
