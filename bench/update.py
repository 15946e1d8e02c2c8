"""One edited note, re-indexed: by a new `retriever index` process (which loads the models), and by the same command
sent to a warm `retriever serve` of the index, which builds it with the models it holds. Both in the same run,
taking turns edit by edit, each as wall and CPU seconds (the server's CPU counted with the client's), beside the
bare embedding of the edited section by the loaded passage encoders: what the update should cost.

    .venv/bin/python bench/update.py [--runs 5] [--corpus hecto] [--json bench/results/update.json]

The first update a server builds also loads its passage encoders (questions use others); it is its own row.
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

from retriever.api import DEFAULT_MODELS, default_cache_dir
from retriever.encoders import load_encoder

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], server_pid: int | None = None) -> tuple[float, float, dict]:
    """(wall, CPU of the command and of the server meanwhile, its --json report)."""
    cpu = children_cpu() + (process_cpu(server_pid) if server_pid else 0.0)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-500:]}")
    spent = children_cpu() + (process_cpu(server_pid) if server_pid else 0.0) - cpu
    return wall, spent, json.loads(done.stdout)


def editor(note: Path) -> Callable[[int], str]:
    """Each call appends one new line to the note's last section: one chunk to embed again."""
    original = note.read_text(encoding="utf-8")

    def edit(n: int) -> str:
        line = f"- 수정 {n}: 결제 취소는 영업일 기준 {n + 1}일 안에 처리된다"
        note.write_text(f"{original.rstrip()}\n{line}\n", encoding="utf-8")
        return line

    return edit


def bare_embedding(texts: list[str], runs: int) -> float:
    """Seconds to embed these texts with every default passage encoder, once loaded (median of runs)."""
    encoders = [load_encoder(name, default_cache_dir()) for name in DEFAULT_MODELS]
    for encoder in encoders:
        encoder.encode(texts, "passage")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        for encoder in encoders:
            encoder.encode(texts, "passage")
        times.append(time.perf_counter() - started)
    return statistics.median(times)


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
        with Server(notes, index) as connection:
            server_pid = int(connection.call("/health")["pid"])
            edit(0)
            first = timed([*RETRIEVER, "index", *where], server_pid)
            for n in range(1, args.runs + 1):
                edit(2 * n - 1)
                wall, cpu, report = timed([*RETRIEVER, "index", *where, "--no-server"])
                rows["new process"].append((wall, cpu))
                embedded.append(report["embedded"])
                edit(2 * n)
                wall, cpu, report = timed([*RETRIEVER, "index", *where], server_pid)
                rows["through the server"].append((wall, cpu))
                embedded.append(report["embedded"])
                built.append(report["seconds"])
        edit(0)
        bare = bare_embedding([note.read_text(encoding="utf-8").split("\n## ")[-1]], args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    new_wall = statistics.median(w for w, _ in rows["new process"])
    new_cpu = statistics.median(c for _, c in rows["new process"])
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
    print(f"{'  of which the server built (its report)':<66} {statistics.median(built):8.2f}")
    print(f"{'bare embedding of the edited section, models loaded (reference)':<66} {bare:8.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {"corpus": args.corpus, "rows": [{"name": n, "wall": w, "cpu": c} for n, w, c in table]}
        extra = {"server_build": statistics.median(built), "bare_embedding": bare}
        args.json.write_text(json.dumps(result | extra, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
