"""Retrieval quality on a query file: Recall@1, Recall@5 and MRR@10, overall, per language and per direction, plus
the misses.

A query file is TSV with a header: `query`, `target` (a substring that a relevant chunk contains, heading
included) and optionally `lang` (the question's language) and `text_lang` (the language of the passage that holds
the target). Substring targets survive re-chunking and edits elsewhere in a note, which chunk ids would not. The
passage's language comes from the file, not from the hits: a miss has no passage to look at, and a direction whose
misses were left out would look better than it is.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RetrieverError
from ..reading.notes import normalise
from .results import Hit

DEPTH = 10  # MRR@10: the deepest rank any metric looks at


UNKNOWN = "-"


@dataclass(frozen=True)
class EvalQuery:
    query: str
    target: str
    lang: str
    text_lang: str = UNKNOWN

    @property
    def direction(self) -> str | None:
        """`ko→en`: a Korean question about an English passage; None when either language is not given."""
        return None if UNKNOWN in (self.lang, self.text_lang) else f"{self.lang}→{self.text_lang}"


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
    by_direction: dict[str, Metrics] = field(default_factory=dict)  # ko→ko, en→en, ko→en, en→ko
    misses: list[Outcome] = field(default_factory=list)  # not first: rank None or > 1

    def to_json(self) -> dict[str, object]:
        return {
            "overall": vars(self.overall),
            "by_lang": {lang: vars(m) for lang, m in self.by_lang.items()},
            "by_direction": {direction: vars(m) for direction, m in self.by_direction.items()},
            "misses": [
                {
                    "query": o.query.query,
                    "target": o.query.target,
                    "lang": o.query.lang,
                    "text_lang": o.query.text_lang,
                    "rank": o.rank,
                    "top": o.top,
                }
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
        raise RetrieverError(
            f"{path} needs a tab-separated header with columns query and target (and optional lang, text_lang)"
        )
    queries = []
    for line, row in enumerate(rows, start=2):
        query, target = normalise(row.get("query") or "").strip(), normalise(row.get("target") or "").strip()
        if not query or not target:
            raise RetrieverError(f"{path}:{line}: empty query or target")
        lang, text_lang = ((row.get(column) or "").strip() or UNKNOWN for column in ("lang", "text_lang"))
        queries.append(EvalQuery(query, target, lang, text_lang))
    return queries


def _unspaced(text: str) -> str:
    return "".join(text.split())


def relevant(hit: Hit, target: str) -> bool:
    """Whitespace ignored: a target copied from one line may run from a heading into its text (`제19조(육아휴직) ①
    사업주는`: an article's heading, whose line goes on with its first paragraph), and PDF extractors differ in the
    spaces they put into the same line (`결측 치` / `결측치`, `W ilcoxon`), so a target must not depend on them."""
    return _unspaced(target) in _unspaced(f"{hit.heading}\n{hit.text}")


def evaluate(queries: Sequence[EvalQuery], search: Callable[[str, int], Sequence[Hit]]) -> Report:
    outcomes = []
    for q in queries:
        hits = search(q.query, DEPTH)
        rank = next((h.rank for h in hits if relevant(h, q.target)), None)
        outcomes.append(Outcome(q, rank, hits[0].heading if hits else ""))
    langs = sorted({o.query.lang for o in outcomes})
    directions = sorted({d for o in outcomes if (d := o.query.direction)}, key=lambda d: (len(set(d.split("→"))), d))
    return Report(
        overall=Metrics.of(outcomes),
        by_lang={lang: Metrics.of([o for o in outcomes if o.query.lang == lang]) for lang in langs},
        by_direction={d: Metrics.of([o for o in outcomes if o.query.direction == d]) for d in directions},
        misses=[o for o in outcomes if o.rank != 1],
    )
