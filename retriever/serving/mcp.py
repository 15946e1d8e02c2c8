"""`retriever mcp`: the notes as tools for AI assistants, over the official MCP SDK.

The tools return the same JSON as `--json`, so an assistant sees what a script sees. A user's mistake (an empty
question, an unknown id) comes back as the tool's error text, for the assistant to read and correct.

The protocol answers from the first moment (`initialize`, `tools/list`): the models and the index load in a
background thread, which a tool call waits for, and nothing heavy is imported before the loop runs (clients gave
up on a server that took 7-70 s to say hello).
"""

from __future__ import annotations

import inspect
import io
import json
import re
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.stdio import stdio_server

from .. import version
from ..errors import RetrieverError
from .loading import Loading

if TYPE_CHECKING:
    from .service import Service

INSTRUCTIONS = (
    "Search the user's own notes (mostly Korean, often Q&A shaped). Use `ask` for a free-form question in Korean "
    "or English, `similar` to find the notes' own questions closest to one, `get` with a result's id (path#line) "
    "for that passage or with a path for the whole note, and `status` for what is indexed."
)


@contextmanager
def as_tool_errors() -> Iterator[None]:
    try:
        yield
    except RetrieverError as exc:
        raise ToolError(str(exc)) from None


SEARCHES = {
    "ask": "Passages of the notes that answer the question, best first, each with id, path, lines, heading, text.",
    "similar": "The notes' own questions (headings) closest to this one, each with its answer; in notes that ask no "
    "questions, the closest sections, each named by its heading path.",
}
FILTERS_HELP = (
    " Optional filters narrow the search: path globs (.gitignore style, any may match), tags (all required), "
    "since/until dates (YYYY-MM-DD: front-matter date, else the file's), a collection's name."
)


def searcher(loading: Loading[Service], method: str) -> Callable[..., dict[str, Any]]:
    """`ask` and `similar` as tools: the same arguments (the SDK reads the schema off this signature), another
    method of the service."""

    def search(
        question: str,
        k: int = 5,
        path: list[str] | None = None,
        tag: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        collection: str | None = None,
    ) -> dict[str, Any]:
        filters = {"path": path, "tag": tag, "since": since, "until": until, "collection": collection}
        with as_tool_errors():  # Filters.named passes over the ones left None
            return loading.wait().search(method, question, k, filters=filters)

    return search


class Tools(MCPServer):
    """The SDK's server, refusing a call with an argument its tool does not take, as HTTP refuses an unknown field:
    the SDK drops it silently, and a misspelt filter (`tags` for `tag`) dropped so would widen the search unseen."""

    def __init__(self, **options: Any) -> None:
        super().__init__("retriever", version=version(), instructions=INSTRUCTIONS, log_level="WARNING", **options)
        self.arguments: dict[str, list[str]] = {}

    def add(self, fn: Callable[..., dict[str, Any]], name: str | None = None, description: str | None = None) -> None:
        name = name or fn.__name__
        self.arguments[name] = list(inspect.signature(fn).parameters)
        self.tool(name=name, description=description)(fn)

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        known = self.arguments.get(name)  # an unknown tool is the SDK's to refuse
        unknown = [argument for argument in arguments if known is not None and argument not in known]
        if known is not None and unknown:
            raise ToolError(f"unknown argument {str(unknown[0])[:100]!r}; {name} takes {', '.join(known) or 'none'}")
        return await super().call_tool(name, arguments, context)


def build(loading: Loading[Service], **options: Any) -> MCPServer:
    """The tools; each one (but `status`, which says "loading") waits for the load, or fails with its error.
    `options` go to the SDK's server: over HTTP, how it authenticates a request (mcp_http.py)."""
    server = Tools(**options)
    for method, description in SEARCHES.items():
        server.add(searcher(loading, method), method, description + FILTERS_HELP)

    def get(id: str) -> dict[str, Any]:
        """A passage by the id a result carries (path#line), or a whole note by its path."""
        with as_tool_errors():
            return loading.wait().get(id)

    def status() -> dict[str, Any]:
        """What is indexed: notes, chunks, models, when it was built, and whether the notes changed since (while
        the models load: {"status": "loading"})."""
        with as_tool_errors():
            if loading.state == "failed":
                loading.wait()  # raises the load's error
            ready = loading.ready
            return loading.health() if ready is None else ready.status()

    server.add(get)
    server.add(status)
    return server


def run(load: Callable[[], Service], on_ready: Callable[[str], None]) -> None:
    """Start the load in the background, then serve the protocol over stdio at once (HTTP: mcp_http.py)."""
    loading = Loading(load)
    server = build(loading)
    on_ready("MCP over stdio")
    loading.start()
    # stdout is the protocol: anything a library prints must reach stderr at once, not sit in a buffer that is
    # flushed onto the wire at exit
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    anyio.run(serve_stdio, server)


async def serve_stdio(server: MCPServer) -> None:
    """The SDK's stdio loop, reading lines repaired first: a request whose JSON escapes a lone surrogate (valid
    JSON, invalid text) fails the SDK's validation before any handler sees its id, and was never answered."""
    lines = anyio.wrap_file(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"))
    async with stdio_server(stdin=repaired(lines)) as (read, write):  # type: ignore[arg-type]
        lowlevel = server._lowlevel_server  # what MCPServer.run_stdio_async runs; no public handle to it
        await lowlevel.run(read, write, lowlevel.create_initialization_options())


# A line with fewer brackets cannot nest deep enough to trouble a parser; one with more is parsed here first.
MAX_BRACKETS = 512
REQUEST_ID = re.compile(r'"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\]|\\.){0,200}")')


async def repaired(lines: AsyncIterable[str]) -> AsyncIterator[str]:
    """Each line with every lone surrogate replaced by U+FFFD, as the SDK itself replaces undecodable bytes: the
    request then reaches its tool, which refuses such text in one line."""
    async for line in lines:
        deep = line.count("[") + line.count("{") > MAX_BRACKETS
        if "\\u" not in line and not deep:  # only an escape can carry a lone surrogate past the UTF-8 decoder
            yield line
            continue
        try:
            message = json.loads(line)
        except RecursionError:  # the SDK's parser gives up on such a line silently and never answers it
            yield rejected(line)
            continue
        except ValueError:
            yield line  # the SDK answers what is not JSON at all
            continue
        yield json.dumps(without_surrogates(message), ensure_ascii=False) + "\n"


def rejected(line: str) -> str:
    """A request too deeply nested to parse, as one the SDK does answer, with an error under the same id: a call of
    a method that names the problem, which it reports as not found."""
    found = REQUEST_ID.search(line[:1000])
    ident = json.loads(found.group(1)) if found else None
    return json.dumps({"jsonrpc": "2.0", "id": ident, "method": "rejected: request nested too deeply"}) + "\n"


def without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    return value
