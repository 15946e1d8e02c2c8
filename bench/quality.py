"""Ranking quality per mode on both dev sets, and what each mode costs per query (warm, in-process).

    .venv/bin/python bench/quality.py

Builds one index per corpus with every encoder, then ranks each query file under each variant. Prints a table
(R@1 / MRR@10 per set and language, p50 latency) and writes bench/results/quality.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpora import materialise  # noqa: E402

from retriever import Retriever  # noqa: E402
from retriever.encoders import DEFAULT_MODEL, USE_MODEL  # noqa: E402
from retriever.evaluation import evaluate, read_queries  # noqa: E402
from retriever.ranking import RankSettings  # noqa: E402

E5, BOTH = (DEFAULT_MODEL,), (DEFAULT_MODEL, USE_MODEL)
VARIANTS: dict[str, tuple[tuple[str, ...], RankSettings]] = {
    "dense e5, chunk vector only": (E5, RankSettings(mode="dense", section=1.0, part=0.0)),
    "dense e5, chunk + best part": (E5, RankSettings(mode="dense")),
    "dense e5+use": (BOTH, RankSettings(mode="dense")),
    "lexical (bm25)": (E5, RankSettings(mode="lexical")),
    "hybrid e5 + bm25": (E5, RankSettings(mode="hybrid")),
    "hybrid e5+use + bm25": (BOTH, RankSettings(mode="hybrid")),
}


def timed_search(retriever: Retriever, latencies: list[float]):  # noqa: ANN201
    def search(question: str, k: int):  # noqa: ANN202
        started = time.perf_counter()
        hits = retriever.ask(question, k)
        latencies.append(time.perf_counter() - started)
        return hits

    return search


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="retriever-quality-"))
    results: dict[str, dict[str, object]] = {}
    for corpus, (notes, queries_file) in materialise(work).items():
        Retriever(notes, work / f"{corpus}-index", models=list(BOTH)).index()
        queries = read_queries(queries_file)
        for variant, (models, settings) in VARIANTS.items():
            retriever = Retriever(notes, work / f"{corpus}-index", models=list(models), auto_update=False)
            retriever.ranking = replace(settings)
            retriever.ask(queries[0].query, 10)  # warm: models and index loaded
            latencies: list[float] = []
            report = evaluate(queries, timed_search(retriever, latencies))
            results.setdefault(variant, {})[corpus] = report.to_json() | {
                "p50_ms": statistics.median(latencies) * 1000
            }
    header = f"{'variant':<30}" + "".join(f"{c + ' ' + lang:>16}" for c in ("notes", "kobill") for lang in ("all", "ko", "en"))
    print(header + f"{'p50 notes':>11}{'p50 kobill':>12}")
    print(f"{'':<30}" + f"{'R@1 / MRR@10':>16}" * 6)
    for variant, per_corpus in results.items():
        cells = ""
        for corpus in ("notes", "kobill"):
            data = per_corpus[corpus]
            for lang in ("all", "ko", "en"):
                m = data["overall"] if lang == "all" else data["by_lang"][lang]
                cells += f"{m['recall_at_1']:>9.2f} / {m['mrr_at_10']:.2f}"
        print(f"{variant:<30}{cells}{per_corpus['notes']['p50_ms']:>9.1f}ms{per_corpus['kobill']['p50_ms']:>10.1f}ms")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "quality.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
