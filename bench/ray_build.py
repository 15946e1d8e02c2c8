"""Chunks/s of a local build beside `index --ray local` with 1 and 2 workers, in the same run on the same notes.

    .venv/bin/python bench/ray_build.py [--notes 200,800] [--workers 1,2] [--json out.json]

The notes are generated as bench/many_notes.py does (sections and bullets of the repo's notes, a seeded mix). Every
row is a whole `Retriever.index(full=True)` into its own folder; the local row runs with its encoders already
loaded, the Ray rows start a cluster of this machine (`--ray local`, as many CPUs as workers) whose actors load the
encoders themselves, so a Ray row's seconds hold everything Ray adds: the cluster's start, each actor's model load,
and the steps' trips through Ray's object store. A one-CPU actor runs torch on one thread, so a local row on one
thread runs the same passes on the same CPU: the 1-worker row's seconds beyond it are Ray's, split from two corpus
sizes into a fixed part (cluster start, model loads) and a part per chunk.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from many_notes import generate

from retriever.api import Retriever
from retriever.indexing.ray_build import LOCAL, RaySettings


def timed_build(notes: Path, index: Path, ray: RaySettings | None) -> tuple[int, float]:
    """(chunks, wall seconds) of one full build."""
    retriever = Retriever(notes, index)
    if ray is None:
        retriever.encoders(retriever.index_models())  # loaded before the clock, as a warm local build has them
    started = time.perf_counter()
    report = retriever.index(full=True, ray=ray)
    return report.chunks, time.perf_counter() - started


def rows_of(work: Path, count: int, workers: list[int]) -> dict[str, dict[str, float]]:
    """One build of each kind on the same `count` generated notes."""
    notes = work / f"notes-{count}"
    notes.mkdir()
    generate(notes, count)
    threads = torch.get_num_threads()
    runs: list[tuple[str, RaySettings | None, int]] = [("local", None, threads), ("local 1 thread", None, 1)]
    runs += [(f"ray {n} worker{'s' if n > 1 else ''}", RaySettings(LOCAL, workers=n, cpus=n), threads) for n in workers]
    rows = {}
    for i, (name, ray, torch_threads) in enumerate(runs):
        torch.set_num_threads(torch_threads)  # a Ray actor of one CPU runs torch on one thread (OMP_NUM_THREADS=1)
        chunks, seconds = timed_build(notes, work / f"index-{count}-{i}", ray)
        rows[name] = {"chunks": chunks, "seconds": round(seconds, 1), "chunks_per_s": round(chunks / seconds, 2)}
        print(f"{name:<16}{chunks:>7} chunks {seconds:>8.1f} s {chunks / seconds:>8.2f} chunks/s", flush=True)
    torch.set_num_threads(threads)
    return rows


def overhead(small: dict[str, dict[str, float]], large: dict[str, dict[str, float]]) -> dict[str, float]:
    """Ray's cost beyond the same passes run locally on one thread, as fixed seconds (the cluster's start, the
    actors' model loads) plus milliseconds per chunk (the steps' trips through Ray), from two corpus sizes."""
    extra = [
        (run["local 1 thread"]["chunks"], run["ray 1 worker"]["seconds"] - run["local 1 thread"]["seconds"])
        for run in (small, large)
    ]
    (n1, e1), (n2, e2) = extra
    per_chunk = (e2 - e1) / (n2 - n1)
    return {"fixed_s": round(e1 - per_chunk * n1, 1), "ms_per_chunk": round(per_chunk * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", default="200,800", help="two corpus sizes, in notes")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts of the Ray rows")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="retriever-ray-bench-"))
    workers = sorted({1, *map(int, args.workers.split(","))})
    results: dict[str, object] = {}
    for count in map(int, args.notes.split(",")):
        print(f"{count} notes", flush=True)
        results[str(count)] = rows_of(work, count, workers)
    small, large = (results[k] for k in list(results)[:2])
    results["overhead"] = cost = overhead(small, large)  # type: ignore[arg-type]
    print(
        f"Ray's overhead (1 worker beyond local on 1 thread): {cost['fixed_s']} s fixed + "
        f"{cost['ms_per_chunk']} ms per chunk"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
