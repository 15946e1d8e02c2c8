"""Ranking quality per mode on the dev sets, and what each mode costs per query (warm, in-process).

    .venv/bin/python bench/quality.py [--corpora pdfdocs,htmldocs]

Builds one index per corpus with every encoder, then ranks each query file under each variant. Prints one table per
corpus (R@1 / R@5 / MRR@10 overall, per question language and per direction: ko→ko, en→en, ko→en, en→ko; p50
latency) and writes bench/results/quality.json. Three rows are the ones to compare: the default (both encoders,
hybrid, late re-rank), `--mode dense` (both encoders, late re-rank) and plain dense e5 (the e5 vector of each chunk
and nothing else, what a bare vector store gives).
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
from retriever.search.evaluation import evaluate, read_queries
from retriever.search.ranking import RankSettings

E5, BOTH = (DEFAULT_MODEL,), (DEFAULT_MODEL, USE_MODEL)
THIRDS = {"section": 1 / 3, "part": 1 / 3, "heading": 1 / 3}
VARIANTS: dict[str, tuple[tuple[str, ...], RankSettings]] = {
    "plain dense e5 (chunk vectors)": (E5, RankSettings(mode="dense", section=1.0, part=0.0, rerank=0)),
    "dense e5, chunk + best part": (E5, RankSettings(mode="dense", rerank=0)),
    "dense e5+use": (BOTH, RankSettings(mode="dense", rerank=0)),
    "lexical (bm25)": (E5, RankSettings(mode="lexical", rerank=0)),
    "hybrid e5 + bm25": (E5, RankSettings(mode="hybrid", rerank=0)),
    "hybrid e5+use + bm25": (BOTH, RankSettings(mode="hybrid", rerank=0)),
    "dense e5 + late re-rank": (E5, RankSettings(mode="dense")),
    "dense e5+use + late (--mode dense)": (BOTH, RankSettings(mode="dense")),
    "hybrid e5 + bm25 + late": (E5, RankSettings(mode="hybrid")),
    "hybrid e5+use + bm25 + late (default)": (BOTH, RankSettings(mode="hybrid")),
    "  same, heading 1/3 weight": (BOTH, RankSettings(mode="hybrid", **THIRDS)),
}


COMPARED = (
    "plain dense e5 (chunk vectors)",
    "dense e5+use + late (--mode dense)",
    "hybrid e5+use + bm25 + late (default)",
)


def latencies(retrievers: dict[str, Retriever], questions: list[str], rounds: int = 3) -> dict[str, float]:
    """p50 ms per variant, measured round-robin so drift in machine load falls on every variant alike."""
    times: dict[str, list[float]] = {name: [] for name in retrievers}
    for _ in range(rounds):
        for question in questions:
            for name, retriever in retrievers.items():
                started = time.perf_counter()
                retriever.ask(question, 10)
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) * 1000 if t else float("nan") for name, t in times.items()}


SLICES = ("all", "ko", "en", "ko→ko", "en→en", "ko→en", "en→ko")


def slice_metrics(data: dict[str, object], name: str) -> dict[str, float] | None:
    """One slice of a report's JSON: all, a question language, or a direction (question → passage language)."""
    if name == "all":
        return data["overall"]  # type: ignore[return-value]
    group = data["by_direction"] if "→" in name else data["by_lang"]
    return group.get(name)  # type: ignore[union-attr]


def print_table(corpus: str, by_variant: dict[str, dict[str, object]], flush: bool = False) -> None:
    """Rows are variants, columns are slices, each cell R@1 R@5 MRR@10; a slice with no query is left out."""
    first = next(iter(by_variant.values()))
    slices = [name for name in SLICES if slice_metrics(first, name)]
    counts = {name: slice_metrics(first, name)["n"] for name in slices}  # type: ignore[index]
    print(f"\n{corpus}: R@1 R@5 MRR@10 per slice (n queries), p50 ms")
    print(f"{'variant':<40}" + "".join(f"{f'{name} ({counts[name]})':>17}" for name in slices) + f"{'p50':>8}")
    for variant, data in by_variant.items():
        cells = "".join(
            f"{m['recall_at_1']:>7.2f}{m['recall_at_5']:>5.2f}{m['mrr_at_10']:>5.2f}"
            for m in (slice_metrics(data, name) for name in slices)
            if m
        )
        print(f"{variant:<40}{cells}{data['p50_ms']:>8.1f}", flush=flush)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpora", default=None, help="comma-separated subset of: " + ", ".join(CORPORA))
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "quality.json")
    parser.add_argument("--compared", action="store_true", help="only the three rows the README compares")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the latency measurement; 0: none")
    parser.add_argument("--work", type=Path, default=None, help="where the corpora and indexes go (kept)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="retriever-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    variants = {name: VARIANTS[name] for name in COMPARED} if args.compared else VARIANTS
    results: dict[str, dict[str, dict[str, object]]] = {}
    chosen = args.corpora.split(",") if args.corpora else list(CORPORA)
    args.json.parent.mkdir(exist_ok=True)
    for corpus in chosen:  # each corpus's table as soon as it is ranked, and the JSON so far
        kept = work / corpus  # a --work folder's corpus as an earlier run copied it
        notes, queries_file = (kept, CORPORA[corpus][1]) if kept.is_dir() else materialise(work, [corpus])[corpus]
        Retriever(notes, work / f"{corpus}-index", models=list(BOTH)).index()
        queries = read_queries(queries_file)
        retrievers = {}
        for variant, (models, settings) in variants.items():
            retriever = retrievers[variant] = Retriever(
                notes, work / f"{corpus}-index", models=list(models), auto_update=False
            )
            retriever.ranking = replace(settings)
            results.setdefault(variant, {})[corpus] = evaluate(queries, retriever.ask).to_json()
        for variant, p50 in latencies(retrievers, [q.query for q in queries[:20]], args.rounds).items():
            results[variant][corpus]["p50_ms"] = p50
        print_table(corpus, {variant: per_corpus[corpus] for variant, per_corpus in results.items()}, flush=True)
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
