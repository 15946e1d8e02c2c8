"""Any note text and any question, through every output mode: the terminal with highlights, --json, HTTP and MCP.

One index, built once from notes holding hostile text drawn by hypothesis (rich markup, ANSI escapes, HTML, jamo,
emoji, line breaks inside highlighted words); then questions drawn by hypothesis, each answered in process and
shown as the terminal shows it, as --json prints it, and by one running server. Whatever the text, the passage
appears literally, no style but the tool's own, and nothing raises.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers import cli, serving
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NonInteractiveExampleWarning
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import TextContent
from rich.console import Console

from retriever import Retriever, RetrieverError
from retriever.commands.common import show
from retriever.commands.render import INDENT, hit_lines, plain
from retriever.search.results import Hit
from retriever.serving.client import Connection

BROKEN = "이번 실험의 배치\n사이즈는 32로 했다.\n"  # a hard-wrapped line: the highlight of 배치사이즈 spans the break
HOSTILE = [
    "[bold]",
    "[/]",
    "[/bold yellow]",
    "[link=https://evil.example]클릭[/link]",
    "\x1b[31m",
    "\x1b]0;pwned\x07",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "\u1107\u1162\u110e\u1175",  # 배치 as conjoining jamo
    "e\u0301",
    "👩\u200d💻",
    "\u202e",
    "배치\n사이즈",
    ":smile:",
    "&lt;b&gt;",
    "\\[bold]",
    "\t",
    "\u2028",
    "**굵게**",
]
WORDS = ["배치", "사이즈", "학습률", "드롭아웃", "실험", "batch", "size", "GPU", "32", "했다", " ", "\n", "\n\n"]
# Lone surrogates cannot be written to a UTF-8 file (nor sent as JSON text): every other code point can.
ANY_CHARACTER = st.characters(exclude_categories=("Cs",))
PIECE = st.one_of(st.sampled_from(HOSTILE), st.sampled_from(WORDS), st.text(ANY_CHARACTER, max_size=12))
TEXT = st.lists(PIECE, min_size=1, max_size=14).map("".join)
QUESTIONS = st.one_of(
    st.lists(st.one_of(st.sampled_from(HOSTILE), st.sampled_from(WORDS)), min_size=1, max_size=5).map("".join),
    st.text(ANY_CHARACTER, min_size=1, max_size=30),
)
SGR = re.compile(r"\x1b\[[0-9;]*m")
MARKED = re.compile(r"\x1b\[1;33m(.*?)\x1b\[0m")  # bold yellow: the question's words


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[tuple[Path, Path, Connection]]:
    """The notes, their index and one `serve` of them, for the whole module: building and loading cost seconds."""
    root = tmp_path_factory.mktemp("output")
    notes, index = root / "notes", root / "index"
    (notes / "drawn").mkdir(parents=True)
    (notes / "batch.md").write_text(BROKEN, encoding="utf-8")
    (notes / "markup.md").write_text("## [bold]제목[/] <b>굵게</b>\n배치 [/bold yellow] 사이즈 \x1b[31m빨강\n")
    with warnings.catch_warnings():  # drawn once, outside any test: the index is built from these
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        for n in range(12):
            (notes / "drawn" / f"{n}.md").write_text(f"## {TEXT.example()}\n{TEXT.example()}\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RETRIEVER_CACHE_DIR", str(model_cache))
        env.setenv("HF_HUB_OFFLINE", "1")
        Retriever(notes, index, models=["e5"], cache_dir=model_cache).index()
        with serving(notes, index) as (server, _):
            yield notes, index, server


@pytest.fixture(scope="module")
def api(library: tuple[Path, Path, Connection], model_cache: Path) -> Retriever:
    return Retriever(library[0], library[1], models=["e5"], cache_dir=model_cache)


def terminal(hit: Hit) -> str:
    """The hit exactly as a colour terminal receives it."""
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, color_system="standard", width=200, soft_wrap=True)
    for line in hit_lines(hit):
        console.print(line)
    return screen.getvalue()


def literally(text: str) -> str:
    """Text as the terminal must show it: control characters spelt out, a tab as spaces (a pattern)."""
    return "".join(" {1,8}" if ch == "\t" else re.escape(ch) for ch in plain(text))


def check_terminal(hit: Hit) -> None:
    shown = terminal(hit)
    assert "\x1b" not in SGR.sub("", shown)  # no escape but the tool's own colours
    text_lines = SGR.sub("", shown).split("\n")[1:]  # the head line first
    wanted = hit.text.split("\n")
    if len(wanted) > 1 and wanted[-1] == "":  # a final line break ends the last line; it opens no other
        wanted.pop()
    for line, written in zip(wanted, text_lines):
        assert re.fullmatch(re.escape(INDENT) + literally(line), written), (line, written)
    assert text_lines[len(wanted)] == ""  # then the blank line between results, and nothing of the text after it
    styled = "".join(MARKED.findall(shown.replace("\n" + INDENT, "")))
    marks = "".join(hit.text[start:end].replace("\n", "") for start, end in hit.highlights)
    assert re.fullmatch(literally(marks), styled), (marks, styled)


def asked(api: Retriever, question: str) -> list[Hit] | str:
    """The hits, or the one-line error the tool gives for such a question."""
    try:
        return api.ask(question, 3, mode="hybrid")
    except RetrieverError as exc:
        assert "\n" not in str(exc)
        return str(exc)


def test_a_highlight_across_a_line_break_is_shown_as_written(library: tuple[Path, Path, Connection]) -> None:
    notes, index, _ = library
    where = ["--notes", str(notes), "--index", str(index), "--path", "batch.md"]  # drawn notes may say 배치사이즈 too
    run = cli("ask", "배치사이즈", *where, "--no-server", "-k", "1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[1:3] == [f"{INDENT}이번 실험의 배치", f"{INDENT}사이즈는 32로 했다."]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=QUESTIONS)
def test_any_question_shows_its_passages_literally_everywhere(
    api: Retriever, library: tuple[Path, Path, Connection], capsys: pytest.CaptureFixture[str], question: str
) -> None:
    hits = asked(api, question)
    try:
        served = library[2].call("/ask", {"question": question, "k": 3, "mode": "hybrid"})
    except RetrieverError as exc:  # refused by the server as by the API, in one line
        assert isinstance(hits, str) and "\n" not in str(exc)
        return
    assert served is not None and not isinstance(hits, str)
    from_server = [Hit.from_json(result) for result in served["results"]]  # as the CLI reads a server's answer
    assert [hit.text for hit in from_server] == [api.get(hit.id)["text"] for hit in from_server]
    for hit in hits + from_server:
        check_terminal(hit)
    capsys.readouterr()
    show(question, hits, as_json=True)
    printed = json.loads(capsys.readouterr().out)
    assert printed["query"] == question and [r["text"] for r in printed["results"]] == [h.text for h in hits]
    assert [tuple(map(tuple, r["highlights"])) for r in printed["results"]] == [h.highlights for h in hits]


@given(text=TEXT, cuts=st.lists(st.integers(0, 200), max_size=8))
def test_any_text_and_highlights_render_literally(text: str, cuts: list[int]) -> None:
    """The renderer alone, over text no index holds: any spans (sorted, apart) of any text."""
    bounds = sorted({min(cut, len(text)) for cut in cuts})
    spans = tuple((bounds[i], bounds[i + 1]) for i in range(0, len(bounds) - 1, 2))
    check_terminal(Hit(1, 1.0, "[bold]a.md", "[/]", 1, 2, text, highlights=spans, tags=("[/]",), headings=("\x1b[2J",)))


async def mcp_answers(notes: Path, index: Path, questions: list[str]) -> list[tuple[bool, Any]]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "retriever", "mcp", "--notes", str(notes), "--index", str(index)],
        env=dict(os.environ),
    )
    found = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for question in questions:
            answer = await session.call_tool("ask", {"question": question, "k": 3})
            text = " ".join(c.text for c in answer.content if isinstance(c, TextContent))
            found.append((answer.is_error, text if answer.is_error else answer.structured_content))
    return found


@settings(
    max_examples=1, deadline=None, phases=[Phase.generate], suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(questions=st.lists(QUESTIONS, min_size=25, max_size=25))
def test_mcp_answers_any_question_as_the_api_does(
    api: Retriever, library: tuple[Path, Path, Connection], questions: list[str]
) -> None:
    """One MCP session for all the questions: a session starts a server, which loads the models."""
    for question, (failed, answer) in zip(questions, anyio.run(mcp_answers, library[0], library[1], questions)):
        hits = asked(api, question)
        if failed:
            assert isinstance(hits, str) and "\n" not in answer, answer
        else:
            assert not isinstance(hits, str)
            assert [r["text"] for r in answer["results"]] == [api.get(r["id"])["text"] for r in answer["results"]]
