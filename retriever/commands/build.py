"""`index`, `eval` and `doctor`: building an index (here or on a Ray cluster), measuring it, and checking it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import timings
from ..progress import ConsoleReporter, safe
from .common import (
    IndexOpt,
    JsonOpt,
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
    user_errors,
)

if TYPE_CHECKING:  # the API pulls in numpy and model code: imported by the commands that need it
    from ..config import Settings
    from ..indexing.ray_build import RaySettings


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

    from ..progress import replay
    from ..serving.client import send_update

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
    """--ray's settings, refused before any work when Ray is not installed (it is an extra). Its module is imported
    only for --ray: it pulls in numpy and the index code, which an update sent to a running server never needs."""
    from importlib.util import find_spec

    if address is None:
        if workers is not None:
            raise typer.BadParameter("--ray-workers needs --ray", param_hint="--ray-workers")
        return None
    if find_spec("ray") is None:
        raise typer.BadParameter(
            "Ray is not installed; install it with `pip install retriever[ray]`", param_hint="--ray"
        )
    from ..indexing.ray_build import RaySettings

    return RaySettings(address.strip(), workers)


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

    from ..search.evaluation import evaluate, read_queries

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
    from ..api import Retriever
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
