"""`retriever mcp --http` answers only the user who started it: a real server process, driven by the official MCP
SDK's streamable-HTTP client, and by raw requests with exactly the headers another local process could send."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from helpers import NOTES, cli, wait_for
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from retriever.serving import records

pytestmark = pytest.mark.slow  # a real `retriever mcp --http` process
QUESTION = "배치 사이즈는 얼마나 크게?"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get", "arguments": {"id": "a.md"}}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(port: int, message: dict[str, Any], headers: dict[str, str], path: str = "/mcp") -> tuple[int, str]:
    """One MCP message (or other JSON), with exactly these headers besides the protocol's own."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    plain = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    connection.request("POST", path, json.dumps(message), {**plain, **headers})
    reply = connection.getresponse()
    return reply.status, reply.read().decode(errors="replace")


async def ask(port: int, headers: dict[str, str], statuses: list[int] | None = None) -> dict[str, Any]:
    """What an assistant gets through the SDK's client, sending these headers (an MCP client's configuration);
    `statuses` gets the status of every answer the client receives."""

    async def seen(response: httpx2.Response) -> None:
        if statuses is not None:
            statuses.append(response.status_code)

    async with (
        httpx2.AsyncClient(
            headers=headers, timeout=httpx2.Timeout(30, read=300), event_hooks={"response": [seen]}
        ) as http,
        streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("ask", {"question": QUESTION, "k": 1})
        assert result.structured_content is not None
        return result.structured_content


def refused(port: int, headers: dict[str, str]) -> list[int]:
    """The statuses the SDK's client got before it failed, with no result."""
    statuses: list[int] = []
    with pytest.raises(ExceptionGroup):  # the SDK's error for it: the point is that no result came
        anyio.run(ask, port, headers, statuses)
    return statuses


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def own(pid: int) -> records.Record | None:
    return next((record for record in records.running() if record.pid == pid), None)


def test_mcp_over_http_answers_only_its_own_user_is_listed_and_stops(small: tuple[Path, Path]) -> None:
    notes, index = small
    port = free_port()
    command = [sys.executable, "-m", "retriever", "mcp", "--http", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--notes", str(notes), "--index", str(index)], stderr=subprocess.PIPE, text=True
    )
    try:
        announced = process.stderr.readline() if process.stderr else ""
        wait_for(lambda: listening(port) if process.poll() is None else pytest.fail(announced))
        secret = NOTES["a.md"].splitlines()[1]
        for headers in ({}, {"Authorization": "Bearer a-guess"}):  # what another user can send
            for message in (INITIALIZE, CALL):
                status, body = post(port, message, headers)
                assert status == 401 and secret not in body, (headers, body)
        assert set(refused(port, {})) == {401}

        record = wait_for(lambda: own(process.pid))
        assert record.url == f"http://127.0.0.1:{port}" and record.index == str(index.resolve())
        # announced once, with where to connect and the header to send
        assert f"http://127.0.0.1:{port}/mcp" in announced and f"Authorization: Bearer {record.token}" in announced
        assert post(port, CALL, {"Authorization": record.token})[0] == 401  # the token alone is not the header

        bearer = {"Authorization": f"Bearer {record.token}"}
        assert anyio.run(ask, port, bearer)["results"][0]["heading"] == "배치사이즈"
        assert post(port, INITIALIZE, {**bearer, "Origin": f"http://localhost:{port}"})[0] == 200  # its own origin
        for origin in ("http://evil.example", f"http://127.0.0.1:{free_port()}", "null"):
            assert post(port, INITIALIZE, {**bearer, "Origin": origin})[0] == 403, origin
        assert post(port, CALL, {**bearer, "Host": f"evil.example:{port}"})[0] == 421  # DNS rebinding's Host
        assert post(port, {}, {"Authorization": "Bearer a-guess"}, "/stop")[0] == 401  # not stopped by a stranger
        assert post(port, {}, {**bearer, "Origin": "http://evil.example"}, "/stop")[0] == 403  # nor by a page

        listed = cli("status", "--json")
        assert listed.returncode == 0, listed.stderr
        (server,) = json.loads(listed.stdout)["servers"]
        assert server["pid"] == process.pid and server["kind"] == "mcp" and server["state"] == "ok"
        assert record.token not in listed.stdout

        stopped = cli("stop", str(index))
        assert stopped.returncode == 0 and f"pid {process.pid}" in stopped.stdout, stopped.stderr
        assert process.wait(timeout=60) == 0
        assert records.running() == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)


def test_a_token_of_the_users_choosing_is_the_one_required(small: tuple[Path, Path]) -> None:
    """RETRIEVER_MCP_TOKEN keeps a client's configuration the same across restarts; it is never printed."""
    notes, index = small
    port, token = free_port(), "a-stable-token-of-the-users-choosing"
    command = [sys.executable, "-m", "retriever", "mcp", "--http", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--notes", str(notes), "--index", str(index)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RETRIEVER_MCP_TOKEN": token},
    )
    try:
        announced = process.stderr.readline() if process.stderr else ""
        assert wait_for(lambda: own(process.pid)).token == token
        assert token not in announced and "RETRIEVER_MCP_TOKEN" in announced
        assert anyio.run(ask, port, {"Authorization": f"Bearer {token}"})["results"][0]["heading"] == "배치사이즈"
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
    assert records.running() == []  # a terminated server takes its entry with it


@pytest.mark.parametrize("token", ["short", "with space in the middle!!", "ünïcödé-is-not-a-header-value"])
def test_a_weak_or_unsendable_token_is_one_line(small: tuple[Path, Path], token: str) -> None:
    notes, index = small
    where = ["--notes", str(notes), "--index", str(index)]
    started = cli("mcp", "--http", "--port", "0", *where, env={"RETRIEVER_MCP_TOKEN": token})
    assert started.returncode == 1 and "Traceback" not in started.stderr
    (line,) = started.stderr.strip().splitlines()
    assert line.startswith("error: RETRIEVER_MCP_TOKEN")
