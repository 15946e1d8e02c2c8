"""One edited note, re-indexed: by a new `retriever index` process (which loads the models), and by the same command
sent to a warm `retriever serve` of the index, which builds it with the models it holds. Both in the same run,
taking turns edit by edit, each as wall and CPU seconds (the server's CPU counted with the client's), beside the
bare embedding of the texts the update embeds by the loaded passage encoders: what the update should cost.

    .venv/bin/python bench/update.py [--runs 5] [--corpus hecto] [--json bench/results/update.json]

Where an update through the server goes: the client's own time (its process, imports and requests: its wall less
the build the server reports), and the server's build by phase, taken from the same build run in this process by a
warm Retriever (Retriever.index, then loading the new generation: what the server's update thread runs), in turn
with the other two. The first update a server builds also loads its passage encoders (questions use others); it is
its own row.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from corpora import materialise
from run import RETRIEVER, Server

from retriever import timings
from retriever.api import Retriever, default_cache_dir
from retriever.encoders import DEFAULT_MODELS, load_encoder

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], server_pid: int | None = None) -> tuple[float, float, dict, dict[str, float]]:
    """(wall, CPU of the command and of the server meanwhile, its --json report, its --timings phases in s)."""
    cpu = children_cpu() + (process_cpu(server_pid) if server_pid else 0.0)
    started = time.perf_counter()
    done = subprocess.run([*command, "--timings"], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-500:]}")
    spent = children_cpu() + (process_cpu(server_pid) if server_pid else 0.0) - cpu
    phases = {}
    for line in done.stderr.splitlines():
        name, colon, value = line.rpartition(": ")
        if colon and value.endswith(" ms"):
            phases[name.strip()] = float(value.removesuffix(" ms")) / 1000
    return wall, spent, json.loads(done.stdout), phases


def editor(note: Path) -> Callable[[int], str]:
    """Each call appends one new line to the note's last section: one chunk to embed again."""
    original = note.read_text(encoding="utf-8")

    def edit(n: int) -> str:
        line = f"- 수정 {n}: 결제 취소는 영업일 기준 {n + 1}일 안에 처리된다"
        note.write_text(f"{original.rstrip()}\n{line}\n", encoding="utf-8")
        return line

    return edit


CHECK, COMMIT = "check (load, one question)", "commit (ANN, checksums, manifest)"  # the check runs in the commit


class InProcess:
    """The server's build of an update, run here by a warm Retriever of the same notes and index, phase by phase;
    and the bare embedding of the texts it embedded, by the same loaded encoders."""

    def __init__(self, notes: Path, index: Path) -> None:
        self.retriever = Retriever(notes, index, auto_update=False)
        self.retriever.ask("warm up", 1)
        self.encoders = [load_encoder(name, default_cache_dir()) for name in DEFAULT_MODELS]

    def update(self) -> tuple[dict[str, float], list[str]]:
        """The phases of one update (with "load new generation"), and the texts it embedded."""
        before = {chunk.content_hash for chunk in self.retriever.manifest().chunks}
        timings.phases.clear()
        started = time.perf_counter()
        self.retriever.index()
        with timings.phase("load new generation"):
            self.retriever.loaded()
        phases = {**timings.phases, "total": time.perf_counter() - started}
        if COMMIT in phases:  # an update that found nothing to do commits nothing
            phases[COMMIT] -= phases[CHECK]  # so that the phases add up to the total
        new = [chunk.embed_text for chunk in self.retriever.manifest().chunks if chunk.content_hash not in before]
        return phases, new

    def embedding(self, texts: list[str]) -> float:
        """Seconds to embed these texts with every default passage encoder, as `encode` does, nothing else."""
        started = time.perf_counter()
        for encoder in self.encoders:
            encoder.encode(texts, "passage")
        return time.perf_counter() - started


def median_phases(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(run.get(name, 0.0) for run in runs) for name in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--corpus", default="hecto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="update-bench-"))
    try:
        notes, _ = materialise(work, [args.corpus])[args.corpus]
        index = work / "index"
        where = ["--notes", str(notes), "--index", str(index), "--json"]
        os.environ["RETRIEVER_NO_DAEMON"] = "1"  # the bench's own server only
        subprocess.run([*RETRIEVER, "index", *where, "--no-server"], check=True, capture_output=True)
        note = max(notes.rglob("*.md"), key=lambda p: p.stat().st_size)
        edit = editor(note)
        rows: dict[str, list[tuple[float, float]]] = {"new process": [], "through the server": []}
        embedded: list[int] = []
        built: list[float] = []  # the server's own build and load of each update, from its report
        client: list[dict[str, float]] = []  # the client's --timings, and its wall less the server's build
        server_phases: list[dict[str, float]] = []
        bare: list[float] = []
        here = InProcess(notes, index)
        with Server(notes, index) as connection:
            server_pid = int(connection.call("/health")["pid"])
            edit(0)
            first = timed([*RETRIEVER, "index", *where], server_pid)
            edit(-1)
            here.update()  # loads its passage encoders, as the server's first update did
            for n in range(1, args.runs + 1):
                edit(3 * n - 2)
                wall, cpu, report, _ = timed([*RETRIEVER, "index", *where, "--no-server"])
                rows["new process"].append((wall, cpu))
                embedded.append(report["embedded"])
                edit(3 * n - 1)
                wall, cpu, report, phases = timed([*RETRIEVER, "index", *where], server_pid)
                rows["through the server"].append((wall, cpu))
                embedded.append(report["embedded"])
                built.append(report["seconds"])
                client.append({**phases, "wall": wall, "own": wall - report["seconds"]})
                edit(3 * n)
                phases, texts = here.update()
                server_phases.append(phases)
                bare.append(here.embedding(texts))
        edit(0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report_rows(args, note, rows, first, embedded, built, client, server_phases, bare)


def report_rows(
    args: argparse.Namespace,
    note: Path,
    rows: dict[str, list[tuple[float, float]]],
    first: tuple[float, float, dict, dict[str, float]],
    embedded: list[int],
    built: list[float],
    client: list[dict[str, float]],
    server_phases: list[dict[str, float]],
    bare: list[float],
) -> None:
    new_wall = statistics.median(w for w, _ in rows["new process"])
    new_cpu = statistics.median(c for _, c in rows["new process"])
    embedding = statistics.median(bare)
    table = [
        ("new `index` process", new_wall, new_cpu),
        ("first update through a warm serve (loads its passage encoders)", first[0], first[1]),
        *(
            (f"`index` {name}", statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
            for name, got in rows.items()
            if name != "new process"
        ),
    ]
    print(f"{args.corpus}: one edited note ({note.name}), {statistics.median(embedded):g} texts embedded an update")
    print(f"{'':<66} {'wall s':>8} {'CPU s':>8} {'wall ×':>7} {'CPU ×':>7}")
    for name, wall, cpu in table:
        print(f"{name:<66} {wall:8.2f} {cpu:8.2f} {wall / new_wall:7.3f} {cpu / new_cpu:7.3f}")
    through = statistics.median(w for w, _ in rows["through the server"])
    own = median_phases(client)
    print(f"\nthrough the server, {through:.2f} s wall ({through / embedding:.1f}× the bare embedding):")
    print(f"{'  the build the server reports':<66} {statistics.median(built):8.2f}")
    print(f"{'  the client: its wall less that build':<66} {own['own']:8.2f}")
    for name in ("imports", "server"):
        print(f"{'    of which ' + name + ' (its --timings)':<66} {own.get(name, 0.0):8.2f}")
    phases = median_phases(server_phases)
    print(f"\nthe server's build by phase (the same build in this process, median of {len(server_phases)}):")
    for name, seconds in phases.items():
        name += ", less the check" if name == COMMIT else ""
        print(f"{'  ' + name:<66} {seconds:8.3f} {seconds / embedding:7.1f}×")
    print(f"{'bare embedding of the texts the update embedded (reference)':<66} {embedding:8.3f} {1:7.1f}×")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {"corpus": args.corpus, "rows": [{"name": n, "wall": w, "cpu": c} for n, w, c in table]}
        extra = {"server_build": statistics.median(built), "bare_embedding": embedding, "client": own}
        args.json.write_text(json.dumps(result | extra | {"build_phases": phases}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
