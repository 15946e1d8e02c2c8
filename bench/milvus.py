"""The Milvus store beside the local FAISS store, at scale and on the dev sets.

    .venv/bin/python bench/milvus.py [--sizes 100000,1000000] [--json bench/results/milvus.json]
    .venv/bin/python bench/milvus.py --sizes 20000          # quick try
    # against a real server (bench/milvus_server.py starts one in its own network namespace):
    nsenter --net=/proc/PID/ns/net .venv/bin/python bench/milvus.py --no-quality --sizes 100000 \
        --store milvus://127.0.0.1:19530/bench --server-pid PID

Scale rows: one matrix of e5-shaped vectors (bench/scale.py makes them: real e5 embeddings enlarged by mixing), built
by each store's own code (FAISS: `ann.build_index`, as a local build; Milvus Lite: `milvus_publish.write_matrix`, as a
publish) in a fresh process, then asked the real e5 queries one at a time as `ask` asks for candidates (k = 200,
recall counted on the first 10 against exact search). Memory is the growth of that process (Milvus Lite runs
inside it) or of the server's processes. Quality rows: the dev sets through the CLI's own `eval` on both stores: the
local build, then the publish of that same staged build, and the whole `eval` run of each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpora import materialise
from scale import CACHE, WARM, K, embeddings, exact, fresh, rss, synthesize

from retriever.index.rowfile import RowReader

REPO = Path(__file__).resolve().parent.parent
CANDIDATES = 200  # what ranking asks each channel for


def faiss_run(matrix: Path, queries: np.ndarray, truth: np.ndarray) -> dict[str, object]:
    from retriever.index.ann import build_index

    base, reader = rss(), RowReader(matrix)
    started = time.perf_counter()
    index = build_index(reader)
    built = time.perf_counter() - started
    return {
        "store": f"faiss ({index.kind})",
        "build_s": built,
        **asked(lambda q: index.search(q[None], CANDIDATES)[1][0], queries, truth),
        "rss": rss() - base,
    }


def milvus_run(
    matrix: Path, queries: np.ndarray, truth: np.ndarray, where: str, server: int | None
) -> dict[str, object]:
    """where: a Milvus Lite file (it runs inside this process: memory is this process's growth) or a server URL
    (memory is the growth of the server's processes, server: its process group)."""
    from retriever.local.store import IndexStore
    from retriever.milvus.index import search_matrix
    from retriever.milvus.publish import write_matrix
    from retriever.milvus.store import MilvusStore

    memory = (lambda: group_rss(server)) if server else rss
    base = memory()
    store = MilvusStore(where, IndexStore(Path(tempfile.mkdtemp()) / "stage"))
    if store.client.has_collection("bench__m"):
        store.client.drop_collection("bench__m")
    reader = RowReader(matrix)
    started = time.perf_counter()
    record = write_matrix(store, "bench__m", reader)
    store.call(store.client.load_collection, "bench__m")  # loading builds the HNSW graph: part of the build
    built = time.perf_counter() - started
    search = lambda q: search_matrix(store, "bench__m", record, q, CANDIDATES)
    kind = "milvus server" if server else "milvus lite"
    row = {
        "store": f"{kind} ({record['kind']})",
        "build_s": built,
        **asked(search, queries, truth),
        "rss": memory() - base,
    }
    store.client.drop_collection("bench__m")
    return row


def group_rss(group: int) -> int:
    """Resident bytes of every process in a process group (a server and the children it started)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group:  # the field after ppid is the process group
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # rss, in pages
        except (OSError, IndexError, ValueError):
            continue
    return total


def asked(search, queries: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    for query in queries[:WARM]:
        search(query)
    times, recall = [], []
    for query, want in zip(queries, truth):
        started = time.perf_counter()
        found = search(query)
        times.append(time.perf_counter() - started)
        recall.append(len(set(found[:K].tolist()) & set(want.tolist())) / K)
    return {
        "p50_ms": 1000 * float(np.percentile(times, 50)),
        "p95_ms": 1000 * float(np.percentile(times, 95)),
        "recall@10": float(np.mean(recall)),
    }


def scale_rows(size: int, store: str | None, server: int | None, asks: int) -> list[dict[str, object]]:
    seeds, queries = embeddings()
    queries = queries[: asks + WARM]
    matrix = CACHE / f"rows-{size}.npy"
    if not matrix.exists():
        synthesize(seeds, size, matrix)
    reader = RowReader(matrix)
    truth = exact(reader, queries, K)
    reader.close()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        where = store or str(Path(work) / "bench.db")
        for run, args in ((faiss_run, (matrix, queries, truth)), (milvus_run, (matrix, queries, truth, where, server))):
            row = fresh(run, *args)
            row["rows"] = size
            print(line(row), flush=True)
            rows.append(row)
    return rows


def line(row: dict[str, object]) -> str:
    return (
        f"{row['rows']:>9,} rows  {row['store']:<26} build {row['build_s']:7.1f} s  p50 {row['p50_ms']:6.2f} ms  "
        f"p95 {row['p95_ms']:6.2f} ms  recall@10 {row['recall@10']:.3f}  memory {float(row['rss']) / 2**20:6.0f} MiB"
    )


def quality_rows() -> list[dict[str, object]]:
    """Each dev set through `retriever eval` on the local store and on Milvus Lite, with the same staged build."""
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name, (notes, queries) in materialise(Path(work)).items():
            index = Path(work) / f"index-{name}"
            for store in (None, str(Path(work) / f"{name}.db")):
                extra = ["--store", store] if store else []
                started = time.perf_counter()
                cli("index", "--notes", str(notes), "--index", str(index), *extra)
                built = time.perf_counter() - started
                started = time.perf_counter()
                report = json.loads(
                    cli("eval", str(queries), "--notes", str(notes), "--index", str(index), "--json", *extra)
                )
                seconds = time.perf_counter() - started
                overall = report["overall"]
                row = {
                    "set": name,
                    "store": "milvus lite" if store else "faiss",
                    "R@1": overall["recall_at_1"],
                    "MRR@10": overall["mrr_at_10"],
                    "index_s": built,
                    "eval_s": seconds,
                    "queries": overall["n"],
                }
                print(
                    f"{name:<7} {row['store']:<12} R@1 {row['R@1']:.3f}  MRR@10 {row['MRR@10']:.3f}  {'publish' if store else 'build'} {built:5.1f} s  eval {seconds:5.1f} s for {row['queries']} queries",
                    flush=True,
                )
                rows.append(row)
    return rows


def cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "retriever", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "RETRIEVER_NO_SERVER": "1"},
    )
    if done.returncode != 0:
        raise SystemExit(f"retriever {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts; empty: none")
    parser.add_argument("--no-quality", action="store_true", help="skip the dev-set rows")
    parser.add_argument("--store", help="a Milvus server for the scale rows (milvus://HOST:PORT/NAME); default Lite")
    parser.add_argument("--server-pid", type=int, help="the server's process group, to measure its memory")
    parser.add_argument("--queries", type=int, default=324, help="timed queries per row (all 324 by default)")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "milvus.json")
    args = parser.parse_args()
    results: dict[str, list[dict[str, object]]] = {"quality": [] if args.no_quality else quality_rows(), "scale": []}
    for size in [int(s) for s in args.sizes.split(",") if s]:
        results["scale"] += scale_rows(size, args.store, args.server_pid, args.queries)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
