"""ANN index at scale: build time, size, memory, single-query latency and recall@10 of each index kind on 100 000 and
1 000 000 vectors shaped like real embeddings.

    .venv/bin/python bench/scale.py [--sizes 100000,1000000] [--json bench/results/scale.json]
    .venv/bin/python bench/scale.py --sizes 20000          # quick try

Uniform random vectors have no clusters and spread scores evenly, so recall and list balance measured on them say
little about embeddings (e5's are so alike that two texts average cosine 0.86). So the rows start as e5 embeddings
of ~3.5 k real Korean/English lines (the repo's notes, konlpy's bills; embedded once in a few minutes and cached
under the temp dir) and are enlarged by mixing: each row is normalize(a·x_i + (1-a)·x_j + noise) for a random pair.
Queries are real e5 query embeddings of the eval questions plus 200 held-out lines that are in no row's mixture.

Each matrix is written to a .npy block by block and every index is built through RowReader as the store does, in a
fresh process so its memory growth is its own, then loaded in another fresh process and asked one query at a time,
on one FAISS thread and on FAISS's default threads. IVF indexes are also swept over nprobe.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpora import kobill_dir

from retriever.encoders import DEFAULT_MODEL
from retriever.index.ann import FlatIndex, IVFIndex, VectorIndex, build_index, load_index
from retriever.index.rowfile import RowReader, RowWriter
from retriever.search.evaluation import read_queries

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(tempfile.gettempdir()) / "retriever-scale"
HELD_OUT = 200  # lines kept out of the rows and asked as queries, on top of the eval questions
T = TypeVar("T")
SENTENCE = re.compile(r"(?<=[.?!다])\s+")


def clean(line: str) -> str:
    """A line without markdown markers or the dash rulers of the bills' comparison tables."""
    line = re.sub(r"-{2,}|\.{3,}|·{3,}", " ", line)
    line = re.sub(r"^\s*(#+|[-*]|\d+\.)\s+", "", line)
    return re.sub(r"\s+", " ", line).strip()


def corpus_texts() -> list[str]:
    """Distinct lines, sentences and 2-3 line windows of the notes and the bills: short passages like chunk parts."""
    texts: list[str] = []
    for path in sorted((REPO / "notes").glob("*.md")):
        lines = [clean(line) for line in path.read_text(encoding="utf-8").splitlines()]
        texts += [line for line in lines if len(line) >= 8]
        texts += [s for line in lines for s in SENTENCE.split(line) if len(s) >= 8]
    for path in sorted(kobill_dir().glob("*.txt")):
        lines = [c for c in map(clean, path.read_text(encoding="utf-8").splitlines()) if len(c) >= 8]
        texts += lines + [s for s in SENTENCE.split(" ".join(lines)) if len(s) >= 10]
        texts += [" ".join(lines[i : i + w]) for w in (2, 3) for i in range(len(lines) - w + 1)]
    return list(dict.fromkeys(texts))


def questions() -> list[str]:
    files = [REPO / "eval" / "notes.tsv", REPO / "eval" / "kobill.tsv", REPO / "bench" / "questions.tsv"]
    return list(dict.fromkeys(q.query for f in files for q in read_queries(f)))


def embeddings() -> tuple[np.ndarray, np.ndarray]:
    """(seed rows, queries) as unit float32, embedded once and cached by content."""
    texts, asked = corpus_texts(), questions()
    order = np.random.default_rng(0).permutation(len(texts))
    held = {int(i) for i in order[:HELD_OUT]}
    seeds = [t for i, t in enumerate(texts) if i not in held]
    queries = asked + [texts[i] for i in sorted(held)]
    key = hashlib.sha256("\0".join([DEFAULT_MODEL, *seeds, "\1", *queries]).encode()).hexdigest()[:16]
    seed_file, query_file = CACHE / f"seeds-{key}.npy", CACHE / f"queries-{key}.npy"
    if not (seed_file.exists() and query_file.exists()):
        from retriever.api import default_cache_dir
        from retriever.encoders import load_encoder

        encoder = load_encoder(DEFAULT_MODEL, default_cache_dir())
        print(f"embedding {len(seeds)} passages and {len(queries)} queries (cached in {CACHE})", flush=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(query_file, encoder.encode(queries, "query"))
        np.save(seed_file, encoder.encode(seeds, "passage"))
    return np.load(seed_file), np.load(query_file)


BLOCK = 65_536  # rows generated, or scanned for the exact answer, per step
NOISE = 0.004  # per-dimension sigma: |noise| ≈ 0.08, small next to the distance between two texts (≈ 0.53)


def synthesize(seeds: np.ndarray, rows: int, path: Path) -> None:
    """Rows of normalize(a·x_i + (1-a)·x_j + noise) written block by block to a .npy, never whole in memory."""
    rng = np.random.default_rng(rows)
    writer = RowWriter(path, seeds.shape[1])
    for start in range(0, rows, BLOCK):
        n = min(BLOCK, rows - start)
        i, j = rng.integers(len(seeds), size=(2, n))
        a = rng.random((n, 1), dtype=np.float32)
        block = a * seeds[i] + (1 - a) * seeds[j] + rng.normal(0, NOISE, (n, seeds.shape[1])).astype(np.float32)
        writer.append(block / np.linalg.norm(block, axis=1, keepdims=True))
    writer.close()


def exact(reader: RowReader, queries: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the exact top k per query (float32 inner product), one scanned block at a time."""
    best_scores = np.zeros((len(queries), 0), np.float32)
    best_rows = np.zeros((len(queries), 0), np.int64)
    for start in range(0, reader.rows, BLOCK):
        block = reader.read(start, min(start + BLOCK, reader.rows))
        scores = np.concatenate([best_scores, queries @ block.T], axis=1)
        rows = np.concatenate([best_rows, np.tile(np.arange(start, start + len(block)), (len(queries), 1))], axis=1)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if scores.shape[1] > k else np.argsort(-scores, axis=1)
        best_scores, best_rows = np.take_along_axis(scores, top, 1), np.take_along_axis(rows, top, 1)
    return best_rows


VARIANTS: dict[str, Callable[[RowReader], VectorIndex]] = {
    "flat": FlatIndex.build,
    "chosen": build_index,  # what the store builds: IVF with float16 codes at these sizes
    "ivf-sq8": lambda reader: IVFIndex.build(reader, encoding="SQ8"),  # half the memory, less recall
}
NPROBES = (16, 32, 64, 128)  # swept on each built IVF index: the same lists, scanned more or less widely
K = 10
WARM = 20  # queries run before timing, so first-touch page faults are not counted
EDIT = 1000  # rows removed, then added, to time incremental maintenance


def rss(field: str = "VmRSS") -> int:
    """Resident bytes of this process now (VmRSS) or at its peak (VmHWM; unlike ru_maxrss, not inherited from the
    parent the process was forked from)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE).group(1)) * 1024  # type: ignore[union-attr]


def build_one(variant: str, matrix: Path, out: Path) -> dict[str, object]:
    """In a fresh process: build through RowReader as the store does, then save. Memory is this process's growth."""
    base = rss()
    reader = RowReader(matrix)
    started = time.perf_counter()
    index = VARIANTS[variant](reader)
    seconds = time.perf_counter() - started
    grown, peak = rss() - base, rss("VmHWM") - base
    index.save(out)
    return {"kind": index.kind, "built": index.params, "build_s": seconds, "build_rss": grown, "build_peak": peak}


def timed(index: VectorIndex, queries: np.ndarray) -> tuple[list[float], np.ndarray]:
    for query in queries[:WARM]:
        index.search(query[None], K)
    times, found = [], []
    for query in queries:
        started = time.perf_counter()
        found.append(index.search(query[None], K)[1][0])
        times.append(time.perf_counter() - started)
    return times, np.array(found)


def search_one(kind: str, path: Path, queries: np.ndarray, truth: np.ndarray) -> list[dict[str, object]]:
    """In a fresh process: load as the store does (memory = growth of the process), then time one query at a time
    on one FAISS thread and on FAISS's default threads, score recall@10 against exact search, and time an edit."""
    default_threads = faiss.omp_get_max_threads()
    base = rss()
    index = load_index(kind, path)
    loaded = rss() - base
    rows: list[dict[str, object]] = []
    for nprobe in NPROBES if isinstance(index, IVFIndex) else (None,):
        if nprobe is not None:
            index.index.nprobe = nprobe
        row: dict[str, object] = {"params": index.params, "loaded_rss": loaded}
        for threads in (1, default_threads):
            faiss.omp_set_num_threads(threads)
            times, found = timed(index, queries)
            row[f"p50_ms_{threads}t"] = 1000 * float(np.percentile(times, 50))
            row[f"p95_ms_{threads}t"] = 1000 * float(np.percentile(times, 95))
        row["recall@10"] = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))
        row["load_avg"] = os.getloadavg()[0]
        rows.append(row)
    started = time.perf_counter()
    index.remove(np.random.default_rng(0).choice(len(index), EDIT, replace=False))
    removed = time.perf_counter() - started
    index.add(np.resize(queries, (EDIT, queries.shape[1])))
    added = time.perf_counter() - started - removed
    return [{**row, "remove_ms": 1000 * removed, "add_ms": 1000 * added} for row in rows]


def fresh(function: Callable[..., T], *args: object) -> T:
    """function(*args) in a new interpreter, so each measurement's memory starts from the same empty process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def mib(value: object) -> str:
    return f"{float(value) / 2**20:.0f}"  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"some of {', '.join(VARIANTS)}")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "scale.json")
    args = parser.parse_args()
    sizes, variants = [int(s) for s in args.sizes.split(",")], args.variants.split(",")
    started = time.perf_counter()
    seeds, queries = embeddings()
    print(
        f"{len(seeds)} seed passages, {len(queries)} queries; faiss {faiss.__version__}, "
        f"{os.cpu_count()} cpus, default threads {faiss.omp_get_max_threads()}",
        flush=True,
    )
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="retriever-scale-") as work:
        for n in sizes:
            matrix = Path(work) / f"rows-{n}.npy"
            synthesize(seeds, n, matrix)
            reader = RowReader(matrix)
            truth = exact(reader, queries, K)
            reader.close()
            for variant in variants:
                out = Path(work) / f"{variant}-{n}.faiss"
                built = fresh(build_one, variant, matrix, out)
                for row in fresh(search_one, str(built["kind"]), out, queries, truth):
                    results.append({"rows": n, "variant": variant, **built, **row, "disk": out.stat().st_size})
                    print(line(results[-1]), flush=True)
                out.unlink()
            matrix.unlink()
    report = {
        "faiss": faiss.__version__,
        "cpus": os.cpu_count(),
        "default_threads": faiss.omp_get_max_threads(),
        "queries": len(queries),
        "seed_passages": len(seeds),
        "k": K,
        "seconds": time.perf_counter() - started,
        "results": results,
    }
    args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"\n{table(results)}\n\n{report['seconds']:.0f} s in all; wrote {args.json}")


COLUMNS = (
    "rows",
    "variant",
    "kind",
    "params",
    "build s",
    "disk MiB",
    "build ΔRSS / peak MiB",
    "loaded ΔRSS MiB",
    "p50 / p95 ms (1 thread)",
    "p50 ms (default threads)",
    "recall@10",
    "remove / add 1k rows ms",
)


def line(row: dict[str, object]) -> str:
    params = ",".join(f"{k}={v}" for k, v in row["params"].items()) or "-"  # type: ignore[attr-defined]
    if row["params"] and row["params"] == row["built"]:
        params += " (as built)"
    threads = faiss.omp_get_max_threads()
    cells = [
        f"{row['rows']:,}",
        str(row["variant"]),
        str(row["kind"]),
        params,
        f"{row['build_s']:.1f}",
        mib(row["disk"]),
        f"{mib(row['build_rss'])} / {mib(row['build_peak'])}",
        mib(row["loaded_rss"]),
        f"{row['p50_ms_1t']:.2f} / {row['p95_ms_1t']:.2f}",
        f"{row[f'p50_ms_{threads}t']:.2f}",
        f"{row['recall@10']:.3f}",
        f"{row['remove_ms']:.0f} / {row['add_ms']:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def table(results: list[dict[str, object]]) -> str:
    header = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)
    return "\n".join([header, *map(line, results)])


if __name__ == "__main__":
    main()
