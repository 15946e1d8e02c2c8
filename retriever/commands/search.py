"""`ask`, `similar`, `get` and `info`: reads of an index, asked of a running server first where one holds it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from .. import timings
from ..errors import RetrieverError
from ..progress import ConsoleReporter, safe
from ..search.results import Hit, QuestionHit
from .common import (
    IndexOpt,
    JsonOpt,
    KOpt,
    ModelOpt,
    ModeOpt,
    NotesOpt,
    QuietOpt,
    StoreOpt,
    TimingsOpt,
    app,
    err,
    make_retriever,
    out,
    print_json,
    print_timings,
    setup,
    show,
    user_errors,
)
from .render import located, plain

if TYPE_CHECKING:  # the API pulls in numpy and model code: imported by the commands that need it
    from ..config import Settings

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
    from ..search.question import read_question as checked  # here, before a server is started for an empty
    # question or sent text it cannot encode

    checked(question)
    return question


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
    `start`, one is started in the background first (retriever.serving.daemon), to stay warm for the next question. What
    the server's load or build tells its log is shown here too, as an in-process build would show it."""
    from functools import partial

    from ..progress import replay
    from ..serving.client import ask_server

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
            from ..serving.daemon import start_daemon

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


@app.command()
def info(notes: NotesOpt = None, index: IndexOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Describe the index: model, counts, size, build time. Loads no model."""
    from ..api import Retriever

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
    from ..api import Retriever

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
