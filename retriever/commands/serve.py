"""`serve`, `mcp`, `status` and `stop`: long-running servers started, listed and ended."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import RetrieverError
from ..progress import ConsoleReporter, Feed, safe
from .common import (
    IndexOpt,
    JsonOpt,
    ModelOpt,
    NotesOpt,
    StoreOpt,
    app,
    err,
    make_retriever,
    out,
    print_json,
    setup,
    user_errors,
)

if TYPE_CHECKING:  # the API pulls in numpy and model code: imported by the commands that need it
    from ..config import Settings
    from ..serving.records import Record
    from ..serving.service import Service

WatchOpt = Annotated[bool, typer.Option("--watch", help="Re-index when notes change, and answer from the new index.")]


def start_service(chosen: Settings, watch: bool, store: str | None, reporter: Feed | None = None) -> Service:
    """Index if needed, load every model and the index, and start watching: all before the first question (run in
    the servers' background thread, after they listen)."""
    from ..serving.client import connect
    from ..serving.service import Service
    from ..serving.watch import start_watching

    service = Service(make_retriever(chosen, store=store, reporter=reporter))
    service.retriever.ensure_index()
    if watch and (store or connect(chosen.index, chosen.notes, exclude=os.getpid()) is None):
        # the indexing models too, so the first change is not kept waiting for them; unless another process's
        # server of the index runs, which the watcher sends its rebuilds to (if it goes, they load at the first)
        service.retriever.encoders(service.retriever.index_models())
    service.warm()
    if watch:
        start_watching(service, lambda message: err.print(f"[dim]{safe(message)}[/dim]"))
    return service


@app.command()
def serve(
    notes: NotesOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    port: Annotated[
        int, typer.Option("--port", envvar="RETRIEVER_PORT", help="Port on 127.0.0.1; 0 picks one.")
    ] = 8765,
    watch: WatchOpt = False,
    store: StoreOpt = None,
    idle: Annotated[
        float, typer.Option("--idle", min=0, help="Exit after this many seconds without a request; 0: never.")
    ] = 0,
) -> None:
    """Keep models and index loaded and answer over HTTP on 127.0.0.1; `ask` and `similar` use it by themselves."""
    from ..serving.server import serve as serve_http
    from ..stores import check_store

    with user_errors():
        chosen = setup(notes, index, model)
        check_store(store)
        feed = Feed(ConsoleReporter(err))
        serve_http(
            lambda: start_service(chosen, watch, store, feed),
            chosen.index,
            chosen.notes,
            port,
            lambda record: err.print(announcement(record, chosen)),
            idle,
            feed,
        )


def announcement(record: Record, chosen: Settings) -> str:
    """serve's first line: what it serves, the page's URL with the secret (kept by the page, as Jupyter's is),
    and what ends it."""
    ends = f"exits after {record.idle:g} s without a request, " if record.idle else ""
    return (
        f"serving {safe(chosen.notes)} on {record.url}/#token={record.token} (pid {record.pid}, index "
        f"{safe(record.index)}; {ends}Ctrl-C or `retriever stop {safe(record.index)}` stops it)"
    )


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """List your running servers (background ones that `ask` started, `serve`, `mcp --http`): index, pid, memory,
    idle time."""
    from rich.table import Table

    from ..progress import duration
    from ..serving.control import servers

    with user_errors():
        seen = servers()
    if as_json:
        print_json({"servers": [server.to_json() for server in seen]})
        return
    if not seen:
        out.print("no retriever server is running")
        return
    table = Table("pid", "kind", "memory", "idle", "state", "index", "exits", box=None)
    for server in seen:
        record = server.record
        table.add_row(
            str(record.pid),
            record.kind,
            "?" if server.rss_bytes is None else f"{server.rss_bytes / (1 << 20):.0f} MiB",
            "?" if server.idle_seconds is None else duration(server.idle_seconds),
            server.state,
            safe(record.index),
            f"after {duration(record.idle)} idle" if record.idle else "when stopped",
        )
    out.print(table)


@app.command()
def stop(
    index: Annotated[
        Path | None,
        typer.Argument(
            metavar="[INDEX]",
            envvar="RETRIEVER_INDEX",
            help="The index folder whose server to stop. Default: retriever.toml's, else index/.",
        ),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Stop every server of yours, of any index.")] = False,
) -> None:
    """Stop the servers of an index (the background one `ask` started, `serve`, `mcp --http`), or --all of them."""
    from ..serving import records
    from ..serving.control import same_index
    from ..serving.control import stop as stop_server

    with user_errors():
        chosen = None if every else setup(None, index).index
        wanted = [r for r in records.running() if chosen is None or same_index(r, chosen)]
        if not wanted:
            out.print("no retriever server is running" + ("" if chosen is None else f" for {safe(chosen)}"))
            return
        for record in wanted:
            if not stop_server(record):
                raise RetrieverError(f"the server of {record.index} (pid {record.pid}) did not stop; kill {record.pid}")
            out.print(f"stopped the server of {safe(record.index)} (pid {record.pid})")


@app.command()
def mcp(
    notes: NotesOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    http: Annotated[
        bool,
        typer.Option(
            "--http",
            help="Streamable HTTP on 127.0.0.1 instead of stdio, for your user alone: every request must carry the "
            "token it prints (or RETRIEVER_MCP_TOKEN's) as Authorization: Bearer.",
        ),
    ] = False,
    port: Annotated[
        int, typer.Option("--port", envvar="RETRIEVER_MCP_PORT", help="Port for --http; 0 picks a free one.")
    ] = 8766,
    watch: WatchOpt = False,
    store: StoreOpt = None,
) -> None:
    """Serve the notes to AI assistants over MCP: tools ask, similar, get and status."""
    from ..stores import check_store

    with user_errors():
        chosen = setup(notes, index, model)
        check_store(store)
        if http:
            from ..serving.mcp_http import serve as serve_mcp

            serve_mcp(
                lambda: start_service(chosen, watch, store),
                chosen.index,
                chosen.notes,
                port,
                lambda record, new: err.print(mcp_announcement(record, new)),
            )
            return
        from ..serving.mcp import run

        run(lambda: start_service(chosen, watch, store), lambda message: err.print(f"[dim]{safe(message)}[/dim]"))


def mcp_announcement(record: Record, new: bool) -> str:
    """mcp --http's first line: where clients connect, the header they must send (a new token is shown this once;
    the user's own from RETRIEVER_MCP_TOKEN never), and what ends it."""
    from ..serving.mcp_http import ENDPOINT, TOKEN_ENV

    token = record.token if new else f"<{TOKEN_ENV}>"
    return (
        f"MCP over streamable HTTP on {record.url}{ENDPOINT} for your user alone: send the header "
        f"Authorization: Bearer {token} (pid {record.pid}; Ctrl-C or `retriever stop {safe(record.index)}` stops it)"
    )
