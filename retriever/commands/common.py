"""What every command shares: the typer app and its consoles (results to stdout, the rest to stderr), the
options, settings resolved once, a Retriever made from them, and every failure as one line."""

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
from typer.core import TyperGroup

from .. import timings
from ..errors import RetrieverError
from ..progress import ConsoleReporter, Feed, safe
from ..search.results import Hit
from .render import hit_lines

if TYPE_CHECKING:  # the API pulls in numpy and model code: imported by the commands that need it
    from ..api import Retriever
    from ..config import Settings


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


def setup(
    notes: Path | None, index: Path | None, encoders: str | None = None, mode: ModeName | None = None
) -> Settings:
    from ..config import settings

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
    from ..api import Retriever

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


def print_timings() -> None:
    timings.mark("total")
    for name, seconds in timings.phases.items():
        err.print(f"[dim]{name:>38}: {seconds * 1000:8.1f} ms[/dim]")
