"""The MCP server through the SDK's own client over stdio: the tools an assistant sees, and what they return."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import anyio
from helpers import cli, mcp_over_stdio
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import TextContent

from retriever import version


async def session_calls(notes: Path, index: Path) -> dict[str, Any]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "retriever", "mcp", "--notes", str(notes), "--index", str(index)],
        env=dict(os.environ),  # the model cache and offline settings of the test
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        hello = await session.initialize()
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        asked = await session.call_tool("ask", {"question": "배치 사이즈는 얼마나 크게?", "k": 2})
        first = asked.structured_content["results"][0]
        return {
            "version": hello.server_info.version,
            "tools": tools,
            "ask": asked,
            "similar": await session.call_tool("similar", {"question": "learning rate 은?", "k": 1}),
            "passage": await session.call_tool("get", {"id": first["id"]}),
            "note": await session.call_tool("get", {"id": first["path"]}),
            "missing": await session.call_tool("get", {"id": "nowhere.md#3"}),
            "empty": await session.call_tool("ask", {"question": "  "}),
            "huge": await session.call_tool("ask", {"question": "배치", "k": 10**30}),
            "status": await session.call_tool("status", {}),
            "filtered": await session.call_tool("ask", {"question": "배치 사이즈", "k": 5, "path": ["b.md"]}),
            "dated": await session.call_tool("ask", {"question": "배치", "since": "2024-02-30"}),
            "misspelt": await session.call_tool("ask", {"question": "배치", "tags": ["ml"]}),
        }


def test_mcp_tools_are_listed_and_answer_over_stdio(small: tuple[Path, Path]) -> None:
    notes, index = small
    calls = anyio.run(session_calls, notes, index)
    assert calls["version"] == version() != "unknown"
    assert set(calls["tools"]) == {"ask", "similar", "get", "status"}
    assert "question" in calls["tools"]["ask"].input_schema["properties"]

    results = calls["ask"].structured_content["results"]
    assert [r["rank"] for r in results] == [1, 2] and results[0]["heading"] == "배치사이즈"
    assert calls["similar"].structured_content["results"][0]["question"] == "학습률은 어떻게 정하나요?"
    assert calls["passage"].structured_content["text"] == results[0]["text"]
    assert calls["note"].structured_content["text"] == (notes / results[0]["path"]).read_text(encoding="utf-8")
    assert calls["status"].structured_content["chunks"] == 2

    assert [r["path"] for r in calls["filtered"].structured_content["results"]] == ["b.md"]
    failures = (calls["missing"], "no note"), (calls["empty"], "empty"), (calls["huge"], "from 1 to 100")
    refused = (calls["dated"], "YYYY-MM-DD"), (calls["misspelt"], "unknown argument 'tags'; ask takes question, k")
    for failed, words in (*failures, *refused):
        assert failed.is_error
        text = " ".join(c.text for c in failed.content if isinstance(c, TextContent))
        assert words in text and "\n" not in text


def test_a_taken_port_is_one_line_and_exit_1(small: tuple[Path, Path]) -> None:
    notes, index = small
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for command in (["mcp", "--http"], ["serve"]):
            result = cli(*command, "--port", port, "--notes", str(notes), "--index", str(index))
            assert result.returncode == 1 and "Traceback" not in result.stderr
            assert result.stderr.strip().splitlines()[-1] == (
                f"error: cannot listen on 127.0.0.1:{port} (Address already in use); pick another --port"
            )


def test_a_request_nested_too_deeply_is_answered_under_its_id(small: tuple[Path, Path]) -> None:
    """Raw JSON-RPC over stdio, as a misbehaving client sends it: 100 000 nested arrays used to go unanswered."""
    notes, index = small
    deep = '{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "ask", "arguments": {"k": '
    requests = [
        deep + "[" * 100_000 + "]" * 100_000 + "}}}",
        json.dumps({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}),
    ]
    answers = mcp_over_stdio(notes, index, requests, {7, 8})
    assert "nested too deeply" in answers[7]["error"]["data"]
    assert answers[8]["result"]["tools"]  # and the server goes on answering
