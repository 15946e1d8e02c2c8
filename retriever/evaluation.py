"""Retrieval quality on a query file: Recall@1, Recall@5 and MRR@10, overall and per language, plus the misses.

A query file is TSV with a header: `query`, `target` (a substring that a relevant chunk contains, heading
included) and optionally `lang`. Substring targets survive re-chunking and edits elsewhere in a note, which
chunk ids would not.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RetrieverError
from .notes import normalise
from .results import Hit

DEPTH = 10  # MRR@10: the deepest rank any metric looks at


@dataclass(frozen=True)
class EvalQuery:
    query: str
    target: str
    lang: str


@dataclass(frozen=True)
class Outcome:
    query: EvalQuery
    rank: int | None  # 1-based rank of the first relevant chunk within DEPTH, else None
    top: str  # heading of what came first, to show beside a miss


@dataclass
class Metrics:
    n: int = 0
    recall_at_1: float = 0.0
    recall_at_5: float = 0.0
    mrr_at_10: float = 0.0

    @classmethod
    def of(cls, outcomes: Sequence[Outcome]) -> Metrics:
        n = len(outcomes)
        if n == 0:
            return cls()
        ranks = [o.rank for o in outcomes]
        return cls(
            n=n,
            recall_at_1=sum(r == 1 for r in ranks) / n,
            recall_at_5=sum(r is not None and r <= 5 for r in ranks) / n,
            mrr_at_10=sum(1 / r for r in ranks if r is not None) / n,
        )


@dataclass
class Report:
    overall: Metrics
    by_lang: dict[str, Metrics]
    misses: list[Outcome] = field(default_factory=list)  # not first: rank None or > 1

    def to_json(self) -> dict[str, object]:
        return {
            "overall": vars(self.overall),
            "by_lang": {lang: vars(m) for lang, m in self.by_lang.items()},
            "misses": [
                {"query": o.query.query, "target": o.query.target, "lang": o.query.lang, "rank": o.rank, "top": o.top}
                for o in self.misses
            ],
        }


def read_queries(path: Path) -> list[EvalQuery]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RetrieverError(f"cannot read query file {path}: {exc}") from exc
    if not rows or not {"query", "target"} <= set(rows[0]):
        raise RetrieverError(f"{path} needs a tab-separated header with columns query and target (and optional lang)")
    queries = []
    for line, row in enumerate(rows, start=2):
        query, target = normalise(row.get("query") or "").strip(), normalise(row.get("target") or "").strip()
        if not query or not target:
            raise RetrieverError(f"{path}:{line}: empty query or target")
        queries.append(EvalQuery(query, target, (row.get("lang") or "").strip() or "-"))
    return queries


def relevant(hit: Hit, target: str) -> bool:
    """Spaces and line breaks compared loosely: a target copied from one line may run from a heading into its text
    (`제19조(육아휴직) ① 사업주는`: an article's heading, whose line goes on with its first paragraph)."""
    return " ".join(target.split()) in " ".join(f"{hit.heading}\n{hit.text}".split())


def evaluate(queries: Sequence[EvalQuery], search: Callable[[str, int], Sequence[Hit]]) -> Report:
    outcomes = []
    for q in queries:
        hits = search(q.query, DEPTH)
        rank = next((h.rank for h in hits if relevant(h, q.target)), None)
        outcomes.append(Outcome(q, rank, hits[0].heading if hits else ""))
    langs = sorted({o.query.lang for o in outcomes})
    return Report(
        overall=Metrics.of(outcomes),
        by_lang={lang: Metrics.of([o for o in outcomes if o.query.lang == lang]) for lang in langs},
        misses=[o for o in outcomes if o.rank != 1],
    )
