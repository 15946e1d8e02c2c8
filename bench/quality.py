"""Ranking quality per mode on both dev sets, and what each mode costs per query (warm, in-process).

    .venv/bin/python bench/quality.py

Builds one index per corpus with every encoder, then ranks each query file under each variant. Prints a table
(R@1 / MRR@10 per set and language, p50 latency) and writes bench/results/quality.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpora import CORPORA, materialise

from retriever import Retriever
from retriever.encoders import DEFAULT_MODEL, USE_MODEL
from retriever.evaluation import evaluate, read_queries
from retriever.ranking import RankSettings

E5, BOTH = (DEFAULT_MODEL,), (DEFAULT_MODEL, USE_MODEL)
THIRDS = {"section": 1 / 3, "part": 1 / 3, "heading": 1 / 3}
VARIANTS: dict[str, tuple[tuple[str, ...], RankSettings]] = {
    "dense e5, chunk vector only": (E5, RankSettings(mode="dense", section=1.0, part=0.0, rerank=0)),
    "dense e5, chunk + best part": (E5, RankSettings(mode="dense", rerank=0)),
    "dense e5+use": (BOTH, RankSettings(mode="dense", rerank=0)),
    "lexical (bm25)": (E5, RankSettings(mode="lexical", rerank=0)),
    "hybrid e5 + bm25": (E5, RankSettings(mode="hybrid", rerank=0)),
    "hybrid e5+use + bm25": (BOTH, RankSettings(mode="hybrid", rerank=0)),
    "dense e5 + late re-rank": (E5, RankSettings(mode="dense")),
    "hybrid e5 + bm25 + late": (E5, RankSettings(mode="hybrid")),
    "hybrid e5+use + bm25 + late": (BOTH, RankSettings(mode="hybrid")),
    "  same, heading 1/3 weight": (BOTH, RankSettings(mode="hybrid", **THIRDS)),
}


def latencies(retrievers: dict[str, Retriever], questions: list[str], rounds: int = 3) -> dict[str, float]:
    """p50 ms per variant, measured round-robin so drift in machine load falls on every variant alike."""
    times: dict[str, list[float]] = {name: [] for name in retrievers}
    for _ in range(rounds):
        for question in questions:
            for name, retriever in retrievers.items():
                started = time.perf_counter()
                retriever.ask(question, 10)
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpora", default=None, help="comma-separated subset of: " + ", ".join(CORPORA))
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "quality.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="retriever-quality-"))
    results: dict[str, dict[str, dict[str, object]]] = {}
    chosen = args.corpora.split(",") if args.corpora else list(CORPORA)
    for corpus, (notes, queries_file) in materialise(work, chosen).items():
        Retriever(notes, work / f"{corpus}-index", models=list(BOTH)).index()
        queries = read_queries(queries_file)
        retrievers = {}
        for variant, (models, settings) in VARIANTS.items():
            retriever = retrievers[variant] = Retriever(
                notes, work / f"{corpus}-index", models=list(models), auto_update=False
            )
            retriever.ranking = replace(settings)
            results.setdefault(variant, {})[corpus] = evaluate(queries, retriever.ask).to_json()
        for variant, p50 in latencies(retrievers, [q.query for q in queries[:20]]).items():
            results[variant][corpus]["p50_ms"] = p50
    print(f"{'variant':<30}" + "".join(f"{c + ' ' + lang:>16}" for c in chosen for lang in ("all", "ko", "en")))
    print(f"{'':<30}" + f"{'R@1 / MRR@10':>16}" * 3 * len(chosen) + "  p50 ms per corpus")
    for variant, per_corpus in results.items():
        cells = ""
        for corpus in chosen:
            data = per_corpus[corpus]
            for lang in ("all", "ko", "en"):
                m = data["overall"] if lang == "all" else data["by_lang"].get(lang)  # type: ignore[index, union-attr]
                cells += f"{m['recall_at_1']:>9.2f} / {m['mrr_at_10']:.2f}" if m else f"{'-':>16}"
        p50 = " ".join(f"{per_corpus[c]['p50_ms']:.1f}" for c in chosen)
        print(f"{variant:<30}{cells}  {p50}")
    args.json.parent.mkdir(exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
