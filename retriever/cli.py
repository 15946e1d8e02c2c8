"""`retriever`: a thin typer layer over `retriever.api`. Results go to stdout, everything else to stderr."""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from . import timings, version
from .errors import RetrieverError
from .progress import ConsoleReporter, Feed, safe
from .render import hit_lines, located, plain
from .results import Hit, QuestionHit

if TYPE_CHECKING:  # the API pulls in numpy and model code: imported by the commands that need it
    from .api import Retriever
    from .config import Settings
    from .ray_build import RaySettings
    from .records import Record
    from .service import Service

# typer's usage error (click's, vendored or not): what BadParameter and "No such command" are
UsageError = next(kind for kind in typer.BadParameter.__mro__ if kind.__name__ == "UsageError")


def as_typed(word: str) -> str:
    """A word as one shell argument, in double quotes where they keep it whole and literal."""
    return f'"{word}"' if not set(word) & set('"$`\\!') else shlex.quote(word)


class Commands(TyperGroup):
    """The commands; a question typed without `ask` (`retriever "배치 사이즈는?"`) is told how to ask it."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:
            if args and "Did you mean" not in exc.message:  # not a near miss of a command's name
                exc.message = f"{exc.message.rstrip('.')}; did you mean: retriever ask {as_typed(args[0])}"
            raise


app = typer.Typer(
    cls=Commands,
    help="Ask questions of your notes, in Korean or English, offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # an error stays one line, however long

NotesOpt = Annotated[
    Path | None,
    typer.Option(
        "--notes", envvar="RETRIEVER_NOTES", help="Folder of notes. Default: retriever.toml's folders, else notes/."
    ),
]
IndexOpt = Annotated[
    Path | None,
    typer.Option(
        "--index",
        envvar="RETRIEVER_INDEX",
        help="Index folder (with --store: where builds are staged). Default: retriever.toml's, else index/.",
    ),
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="RETRIEVER_STORE",
        help="Keep the index in Milvus: milvus://HOST:PORT/NAME, or a Milvus Lite file ending in .db. "
        "Default: local files in --index.",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--encoders",
        "--model",
        envvar="RETRIEVER_ENCODERS",
        help="Comma-separated encoders: e5, use, or any sentence-transformers name or path. "
        "Default: the index's, else e5,use.",
    ),
]


class ModeName(str, Enum):
    """ranking.MODES, spelt out so that parsing options imports no numpy; an Enum so a wrong one is a usage error."""

    dense = "dense"
    lexical = "lexical"
    hybrid = "hybrid"


ModeOpt = Annotated[
    ModeName | None,
    typer.Option("--mode", envvar="RETRIEVER_MODE", help="Ranking: dense, lexical or hybrid (default hybrid)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]
KOpt = Annotated[int, typer.Option("-k", "--k", min=1, max=100, help="Number of results.")]
TimingsOpt = Annotated[bool, typer.Option("--timings", help="Print on stderr where the time went.")]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", envvar="RETRIEVER_QUIET", help="No progress or notices on stderr; errors still."),
]
MAX_STDIN_BYTES = 16 << 20  # a question, not a file: what is read beyond the model's window is thrown away anyway


def iso_day(value: str | None) -> str | None:
    """A date option checked as the parser reads it: a bad one is a usage error (exit 2) before anything loads."""
    if value is None:
        return None
    import datetime

    try:
        return datetime.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise typer.BadParameter(f"{value!r} is no date; give YYYY-MM-DD") from None


PathFilter = Annotated[
    list[str] | None,
    typer.Option(
        "--path", help="Only notes whose path matches this glob (.gitignore style: journal/, *.md); repeatable."
    ),
]
TagFilter = Annotated[
    list[str] | None,
    typer.Option("--tag", help="Only notes with this tag (front matter or inline #tag; nested too); repeatable."),
]
SinceFilter = Annotated[
    str | None,
    typer.Option(
        "--since", callback=iso_day, help="Only notes dated on or after YYYY-MM-DD (front-matter date, else mtime)."
    ),
]
UntilFilter = Annotated[
    str | None, typer.Option("--until", callback=iso_day, help="Only notes dated on or before YYYY-MM-DD.")
]
CollectionFilter = Annotated[
    str | None,
    typer.Option("--collection", "-c", envvar="RETRIEVER_COLLECTION", help="Only this collection of retriever.toml."),
]
QuestionArg = Annotated[str | None, typer.Argument(help="The question; '-' or nothing reads it from stdin.")]


def print_version(wanted: bool) -> None:
    if wanted:
        out.print(f"retriever {version()}")
        raise typer.Exit()


@app.callback()
def options(
    show_version: Annotated[
        bool, typer.Option("--version", callback=print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="RETRIEVER_CONFIG",
            help="Settings file: folders, collections, excludes, model, mode. Default: ./retriever.toml if present.",
        ),
    ] = None,
) -> None:
    """Ask questions of your notes, in Korean or English, offline."""
    if config is not None:  # read where the commands resolve their settings
        os.environ["RETRIEVER_CONFIG"] = str(config)


def setup(
    notes: Path | None, index: Path | None, encoders: str | None = None, mode: ModeName | None = None
) -> Settings:
    from .config import settings

    return settings(notes, index, encoders, mode.value if mode else None)


@contextmanager
def user_errors() -> Iterator[None]:
    """Every failure ends as one line on stderr and exit 1; RETRIEVER_DEBUG=1 shows the traceback instead. A usage
    error found while running (no question given, nor piped) is left to typer, which reports it as any other: exit 2."""
    try:
        yield
    except RetrieverError as exc:
        err.print(f"[red]error:[/red] {safe(exc)}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, UsageError):
        raise
    except Exception as exc:
        if os.environ.get("RETRIEVER_DEBUG"):
            raise
        err.print(f"[red]error:[/red] unexpected {type(exc).__name__}: {safe(exc)} (RETRIEVER_DEBUG=1 for details)")
        raise typer.Exit(1) from None


def make_retriever(
    chosen: Settings, store: str | None = None, quiet: bool = False, reporter: ConsoleReporter | Feed | None = None
) -> Retriever:
    from .api import Retriever

    encoders = chosen.encoders
    models = [m.strip() for m in encoders.split(",") if m.strip()] if encoders else None
    return Retriever(
        chosen.notes,
        chosen.index,
        models=models,
        reporter=reporter or ConsoleReporter(err, quiet),
        mode=chosen.mode,
        store=store,  # type: ignore[arg-type]
    )


def read_question(question: str | None) -> str:
    """The question from the argument, or stdin read as bytes: a pipe in another encoding, or bytes on the command
    line that are not UTF-8 (lone surrogates), get a one-line error instead of a traceback."""
    if question is None or question == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise typer.BadParameter("give a QUESTION or pipe one on stdin", param_hint="QUESTION")
        data = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)
        if len(data) > MAX_STDIN_BYTES:
            raise RetrieverError(f"the question on stdin is over {MAX_STDIN_BYTES >> 20} MiB")
        try:
            question = data.decode("utf-8")
        except UnicodeDecodeError:
            raise RetrieverError("the question on stdin is not UTF-8 text") from None
    from .question import valid_text  # checked here, before a running server is sent text it cannot encode

    return valid_text(question)


def print_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")


def print_hits(hits: Sequence[Hit]) -> None:
    for hit in hits:
        for line in hit_lines(hit):
            out.print(line)


def show(question: str, hits: Sequence[Hit], as_json: bool) -> None:
    if as_json:
        print_json({"query": question, "results": [h.to_json() for h in hits]})
    else:
        print_hits(hits)
    if not hits:
        err.print("no results")
        raise typer.Exit(1)


@app.command()
def index(
    notes: NotesOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Re-embed everything instead of only what changed.")] = False,
    store: StoreOpt = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Run the embedding on a Ray cluster: its address, auto (the one `ray start` runs here), "
            "or local (one started for this build). Needs `pip install retriever[ray]`.",
        ),
    ] = None,
    ray_workers: Annotated[
        int | None, typer.Option("--ray-workers", min=1, help="Ray workers (one CPU each). Default: one per CPU.")
    ] = None,
    as_json: JsonOpt = False,
    no_server: Annotated[
        bool,
        typer.Option(
            "--no-server",
            envvar="RETRIEVER_NO_SERVER",
            help="Build in this process even if a server of the index runs.",
        ),
    ] = False,
    show_timings: TimingsOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Build or update the index; only new or changed passages are embedded. A running server of the same notes
    and index (`serve`, or the background one `ask` starts) builds it, with the models it holds."""
    timings.mark("imports")
    with user_errors():
        sharding = ray_settings(ray, ray_workers)
        chosen = setup(notes, index, model)
        reporter = ConsoleReporter(err, quiet)
        report = None if no_server or store or sharding else built_by_server(chosen, full, reporter)
        if report is None:
            built = make_retriever(chosen, store=store, reporter=reporter).index(full=full, ray=sharding)
            report = built.to_json()
    if show_timings:
        print_timings()
    for path, reason in report["skipped"]:
        err.print(f"[yellow]warning:[/yellow] skipped {safe(path)}: {safe(reason)}")
    if as_json:
        print_json(report)
        return
    if report["up_to_date"]:
        out.print(
            f"index is up to date: {report['notes']} notes, {report['chunks']} chunks; nothing to embed, "
            f"no model loaded ({report['seconds']:.2f} s)"
        )
        return
    out.print(
        f"indexed {report['notes']} notes into {report['chunks']} chunks: {report['added']} added, "
        f"{report['unchanged']} unchanged, {report['removed']} removed ({report['seconds']:.1f} s)"
    )


REPORT_FIELDS = {"notes": int, "chunks": int, "added": int, "unchanged": int, "removed": int, "seconds": float}
REPORT_FIELDS |= {"embedded": int, "up_to_date": bool, "extracted": int, "skipped": list}


def built_by_server(chosen: Settings, full: bool, reporter: ConsoleReporter) -> dict[str, Any] | None:
    """The report of the update a running server of the same notes and index built, None when there is none (or
    it declined, or went away, or gave an answer that is none: the update is then built here, under the same
    writer lock). The server's build progress is shown here, as an in-process build would show it."""
    from functools import partial

    from .client import send_update
    from .progress import replay

    encoders = [m.strip() for m in chosen.encoders.split(",") if m.strip()] if chosen.encoders else None
    show = None if reporter.quiet else partial(replay, reporter=reporter)
    with timings.phase("server"):
        report = send_update(chosen.index, chosen.notes, {"full": full, "encoders": encoders}, reporter.note, show)
    if report is None:
        return None
    if is_report(report):
        return report
    reporter.note(f"the server of {chosen.index} gave a report that is none; building here")
    return None


def is_report(report: dict[str, Any]) -> bool:
    """Whether a server's answer has the fields of `index --json`, each of its type, skipped as (path, reason)."""
    typed = list(report) == list(REPORT_FIELDS) and all(
        isinstance(report[name], kind) and (kind is bool or not isinstance(report[name], bool))
        for name, kind in REPORT_FIELDS.items()
    )
    return typed and all(
        isinstance(item, list) and len(item) == 2 and all(isinstance(word, str) for word in item)
        for item in report["skipped"]
    )


def ray_settings(address: str | None, workers: int | None) -> RaySettings | None:
    """--ray's settings, refused before any work when Ray is not installed (it is an extra)."""
    from importlib.util import find_spec

    from .ray_build import RaySettings

    if address is None:
        if workers is not None:
            raise typer.BadParameter("--ray-workers needs --ray", param_hint="--ray-workers")
        return None
    if find_spec("ray") is None:
        raise typer.BadParameter(
            "Ray is not installed; install it with `pip install retriever[ray]`", param_hint="--ray"
        )
    return RaySettings(address.strip(), workers)


def served(
    method: str,
    question: str,
    chosen: Settings,
    k: int,
    explain: bool,
    filters: dict[str, Any],
    start: bool,
    reporter: ConsoleReporter,
) -> list[Hit] | None:
    """The answer of a running `retriever serve` for the same notes and index, or None when there is none; with
    `start`, one is started in the background first (retriever.daemon), to stay warm for the next question. What
    the server's load or build tells its log is shown here too, as an in-process build would show it."""
    from functools import partial

    from .client import ask_server
    from .progress import replay

    ask = partial(
        ask_server,
        chosen.index,
        chosen.notes,
        method,
        {"question": question, "k": k, "mode": chosen.mode, "explain": explain, **filters},
        reporter.note,
        None if reporter.quiet else partial(replay, reporter=reporter),
    )
    with timings.phase("server"):
        answer = ask()
        if answer is None and start:
            from .daemon import start_daemon

            if start_daemon(chosen.index, chosen.notes, reporter.note):
                answer = ask()
    if answer is None:
        return None
    kind = QuestionHit if method == "similar" else Hit
    results = answer.get("results")
    try:
        if isinstance(results, list):
            return [kind.from_json(item) for item in results]
        problem = "no list of results"
    except ValueError as exc:
        problem = str(exc)
    reporter.note(f"the server of {chosen.index} gave an answer that is none ({problem}); answering here")
    return None


def print_timings() -> None:
    timings.mark("total")
    for name, seconds in timings.phases.items():
        err.print(f"[dim]{name:>38}: {seconds * 1000:8.1f} ms[/dim]")


def search_command(method: str, summary: str):
    """`ask` and `similar` differ only in which Retriever method answers."""

    def command(
        question: QuestionArg = None,
        notes: NotesOpt = None,
        index: IndexOpt = None,
        model: ModelOpt = None,
        k: KOpt = 5,
        mode: ModeOpt = None,
        store: StoreOpt = None,
        as_json: JsonOpt = False,
        explain: Annotated[bool, typer.Option("--explain", help="Show each channel's share of the rank.")] = False,
        no_server: Annotated[
            bool,
            typer.Option(
                "--no-server", envvar="RETRIEVER_NO_SERVER", help="Answer in this process even if a server runs."
            ),
        ] = False,
        no_daemon: Annotated[
            bool,
            typer.Option(
                "--no-daemon",
                envvar="RETRIEVER_NO_DAEMON",
                help="Start no background server when none runs (one stays warm RETRIEVER_IDLE s, default 600).",
            ),
        ] = False,
        show_timings: TimingsOpt = False,
        quiet: QuietOpt = False,
        path: PathFilter = None,
        tag: TagFilter = None,
        since: SinceFilter = None,
        until: UntilFilter = None,
        collection: CollectionFilter = None,
    ) -> None:
        timings.mark("imports")
        given = {"path": path, "tag": tag, "since": since, "until": until, "collection": collection}
        filters = {name: value for name, value in given.items() if value}
        with user_errors():
            text = read_question(question)
            chosen = setup(notes, index, model, mode)
            start = not no_daemon and store is None  # a shared store's reader need not have the notes to serve
            reporter = ConsoleReporter(err, quiet)
            hits = None if no_server or model else served(method, text, chosen, k, explain, filters, start, reporter)
            if hits is None:
                retriever = make_retriever(chosen, store, reporter=reporter)
                hits = getattr(retriever, method)(text, k, explain, **filters)
        if show_timings:
            print_timings()
        show(text, hits, as_json)

    command.__doc__ = summary
    return app.command(method)(command)


search_command("ask", "Answer a free-form question with the closest passages from the notes.")
search_command(
    "similar",
    "Find the notes' own questions (Q&A headings) closest to this one, each with its best answer passage "
    "(in notes that ask none: the closest sections).",
)


@app.command("eval")
def evaluate_command(
    queries: Annotated[Path, typer.Argument(help="TSV with columns query, target and optional lang, text_lang.")],
    notes: NotesOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    mode: ModeOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure Recall@1, Recall@5 and MRR@10 of `ask` on a query file, per language and direction; list the misses."""
    from rich.table import Table

    from .evaluation import evaluate, read_queries

    with user_errors():
        retriever = make_retriever(setup(notes, index, model, mode), store)
        report = evaluate(read_queries(queries), retriever.ask)
    if as_json:
        print_json(report.to_json())
        return
    table = Table("set", "n", "R@1", "R@5", "MRR@10", box=None)
    for name, m in [*report.by_lang.items(), *report.by_direction.items(), ("all", report.overall)]:
        table.add_row(name, str(m.n), f"{m.recall_at_1:.3f}", f"{m.recall_at_5:.3f}", f"{m.mrr_at_10:.3f}")
    out.print(table)
    if report.misses:
        out.print(f"\n[bold]not first ({len(report.misses)}):[/bold]")
    for miss in report.misses:
        where = f"rank {miss.rank}" if miss.rank else "not in top 10"
        out.print(f"  {safe(f'[{miss.query.lang}]')} {safe(miss.query.query)}  →  {where}; first: {safe(miss.top)}")


@app.command()
def doctor(
    notes: NotesOpt = None,
    index: IndexOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    release_lock: Annotated[
        bool, typer.Option("--release-lock", help="Release a Milvus store's writer lock left by a build that died.")
    ] = False,
) -> None:
    """Check the index against its manifest and the notes: what is stale or broken, and the command that fixes it."""
    from .api import Retriever
    from .doctor import diagnose, release, remedy

    with user_errors():
        chosen = setup(notes, index)
        retriever = Retriever(chosen.notes, chosen.index, auto_update=False, store=store)
        if release_lock:
            out.print(safe(release(retriever)))
            return
        findings = diagnose(retriever)
        fix = remedy(findings, retriever)
    if as_json:
        print_json({"findings": [vars(f) for f in findings], "fix": fix})
    else:
        colours = {"ok": "green", "stale": "yellow", "broken": "red"}
        for finding in findings:
            out.print(f"[{colours[finding.level]}]{finding.level:>6}[/]  {safe(finding.message)}")
        if fix:
            out.print(f"\nfix: {safe(fix)}")
    if fix:
        raise typer.Exit(1)


WatchOpt = Annotated[bool, typer.Option("--watch", help="Re-index when notes change, and answer from the new index.")]


def start_service(chosen: Settings, watch: bool, store: str | None, reporter: Feed | None = None) -> Service:
    """Index if needed, load every model and the index, and start watching: all before the first question (run in
    the servers' background thread, after they listen)."""
    from .client import connect
    from .service import Service
    from .watch import start_watching

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
    from .server import serve as serve_http
    from .stores import check_store

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

    from .control import servers
    from .progress import duration

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
    from . import records
    from .control import same_index
    from .control import stop as stop_server

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
    from .stores import check_store

    with user_errors():
        chosen = setup(notes, index, model)
        check_store(store)
        if http:
            from .mcp_http import serve as serve_mcp

            serve_mcp(
                lambda: start_service(chosen, watch, store),
                chosen.index,
                chosen.notes,
                port,
                lambda record, new: err.print(mcp_announcement(record, new)),
            )
            return
        from .mcp_server import run

        run(lambda: start_service(chosen, watch, store), lambda message: err.print(f"[dim]{safe(message)}[/dim]"))


def mcp_announcement(record: Record, new: bool) -> str:
    """mcp --http's first line: where clients connect, the header they must send (a new token is shown this once;
    the user's own from RETRIEVER_MCP_TOKEN never), and what ends it."""
    from .mcp_http import ENDPOINT, TOKEN_ENV

    token = record.token if new else f"<{TOKEN_ENV}>"
    return (
        f"MCP over streamable HTTP on {record.url}{ENDPOINT} for your user alone: send the header "
        f"Authorization: Bearer {token} (pid {record.pid}; Ctrl-C or `retriever stop {safe(record.index)}` stops it)"
    )


@app.command()
def info(notes: NotesOpt = None, index: IndexOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Describe the index: model, counts, size, build time. Loads no model."""
    from .api import Retriever

    with user_errors():
        chosen = setup(notes, index)
        details = Retriever(chosen.notes, chosen.index, store=store).info()
    if as_json:
        print_json(details)
        return
    for key, value in details.items():
        lines = readable(key, value)
        out.print(f"{key:>14}: {safe(lines[0])}")
        for line in lines[1:]:
            out.print(f"{'':>14}  {safe(line)}")


def readable(key: str, value: Any) -> list[str]:
    """A field of `info` as lines a person reads: a list one item a line, a mapping as name and value, a size
    in KiB or MiB (--json keeps the raw values)."""
    if isinstance(value, list):
        return [str(item) for item in value] or ["(none)"]
    if isinstance(value, dict):
        return [", ".join(f"{name} {item}" for name, item in value.items()) or "(none)"]
    if key == "size_bytes" and isinstance(value, int):
        return [f"{value / (1 << 20):.1f} MiB" if value >= 1 << 20 else f"{value / 1024:.1f} KiB"]
    return ["(none)" if value is None else str(value)]


@app.command()
def get(
    ref: Annotated[str, typer.Argument(metavar="ID", help="A result's id (path#line), or a note's path.")],
    notes: NotesOpt = None,
    index: IndexOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a passage by the id results carry, or a whole note by its path, from the index. Loads no model."""
    from .api import Retriever

    with user_errors():
        chosen = setup(notes, index)
        found = Retriever(chosen.notes, chosen.index, store=store).get(ref)
    if as_json:
        print_json(found)
    elif found["kind"] == "note":
        out.print(Text(plain(found["text"])))
    else:
        hit = Hit.from_json(found)
        out.print(located(hit))
        out.print(Text(plain(hit.text)))


def main() -> None:
    """Run one command, then leave without tearing the interpreter down: a cold question holds Kiwi, two models
    and FAISS, and freeing them object by object takes ~0.7 s after the answer is out (measured: the e5 tokenizer
    0.34 s, Kiwi 0.13 s, FAISS and bm25s 0.11 s), memory the OS takes back at once anyway. Every command has
    finished its writes (fsynced) and stopped its threads by the time it returns."""
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, or a closed stream: nothing left to tell it
            pass
    os._exit(code)
