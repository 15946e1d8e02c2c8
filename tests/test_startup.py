"""Servers answer before their models load, and a cold `ask` leaves a warm server behind: real processes, ordered
by a hold point (RETRIEVER_HOLD keeps the load waiting for a file) rather than by timing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers import cli, wait_for
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from retriever import records
from retriever.client import Connection
from retriever.records import ADDRESS_FILE

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
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: process.poll() is None and listening(port))

        async def session() -> dict[str, Any]:
            async with (
                streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write, *_),
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
            return [await client.call_tool(name, {"question": QUESTION}) for name in ("ask", "status")]

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
