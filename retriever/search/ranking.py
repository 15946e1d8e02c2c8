"""Scoring chunks for a question: dense channels per model, a lexical channel, and their calibrated fusion.

Each model scores a chunk from its whole text, its best part (a bullet or a few sentences, pooled with the heading
from the chunk's pass) and its section's heading. Channels live on different scales, so each is z-normalised over
the candidates before fusion (the sparse BM25 channel held within ±3); BM25 is weighted by the share of the question's words the corpus knows at all ("coverage"), so
an English question over Korean notes, which matches nothing lexically, is not dragged down by noise.

In a folder of Korean and English passages, each channel is normalised within each language (see `by_language`),
and BM25 only re-orders passages within a language (see `lexical_z`): a question scores passages of its own language
higher on every channel, relevant or not, so a Korean question about an English page lost to any Korean passage
that shared a word with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from ..index.manifest import Manifest, matrix_name
from ..index.view import IndexView, LexicalRanking
from ..reading.language import passage_languages
from .boilerplate import boilerplate_rows

Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[Mode, ...] = ("dense", "lexical", "hybrid")
CLIP = 3.0  # z-scores beyond this many deviations count as this many
MIN_LANGUAGE = 20  # candidates of each language, for its own mean and spread to mean anything
QA_SHARE = 0.5  # of the chunks in play that answer a question, for `similar` to rank questions rather than sections


@dataclass(frozen=True)
class RankSettings:
    mode: Mode = "hybrid"
    models: tuple[int, ...] = (0,)  # which of the index's models score (rows of manifest.models)
    section: float = 0.5  # weights of a model's three views of a chunk
    part: float = 0.5
    heading: float = 0.0
    lexical: float = 0.4  # times coverage, on the z-scale
    candidates: int = 200  # per channel, from the ANN indexes; all chunks when the corpus is smaller
    rerank: int = 10  # re-rank this many by late interaction with the primary model's token vectors; 0: off
    by_language: bool = True  # in a folder of two languages, normalise each channel within each language


@dataclass
class Query:
    """A question prepared for ranking: its vectors per model, token vectors for re-ranking, BM25 scores."""

    index: IndexView
    vectors: dict[int, np.ndarray] = field(default_factory=dict)  # model row → [1, dim]
    tokens: np.ndarray | None = None  # the primary model's unit token vectors of the question
    lexical: LexicalRanking | None = None
    text: str = ""  # as the models read it: cut to their window
    allowed: np.ndarray | None = None  # the chunk rows filters let through, sorted; None: every row


@dataclass
class Ranked:
    rows: np.ndarray  # chunk rows, best first (question rows, for questions)
    scores: np.ndarray
    explain: list[dict[str, dict[str, float]]] = field(default_factory=list)
    passages: np.ndarray | None = None  # for questions: the chunk row of each one's best passage


def zscore(values: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """values standardised by the mean and spread of the reference population (by default, their own)."""
    basis = values if reference is None else reference
    spread = float(basis.std())
    return (values - basis.mean()) / spread if spread > 1e-9 else np.zeros_like(values)


def winsorised(values: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """z-scores held within ±CLIP, for the sparse channel: BM25 scores a few chunks and leaves most at zero, so its
    few matches get z of 5-10, which outvoted every dense channel even at a small weight (hecto's English questions:
    R@1 0.42 with e5+use, 0.19 with BM25 added). Dense channels keep plain z: their best candidates are outliers by
    nature, and clipping them too tied the top (dense mode on kobill 0.49 → 0.44, undici 0.61 → 0.58). Rank fusion (RRF) fixed
    hecto as well but cost elsewhere (see docs/quality.md)."""
    return np.clip(zscore(values, reference), -CLIP, CLIP)


@dataclass(frozen=True)
class Pool:
    """The rows a question scores: those it ranks (`shown`) and those its channels are normalised over (`basis`),
    as positions in `rows`. Under a filter the basis is what the question would rank unfiltered, so a filter
    changes which chunks are ranked, never how they score: standardised over the one or two chunks a filter lets
    through, every score was 0 or ±1."""

    rows: np.ndarray
    shown: np.ndarray
    basis: np.ndarray

    @classmethod
    def of(cls, ranked: np.ndarray, reference: np.ndarray | None) -> Pool:
        if reference is None:
            every = np.arange(len(ranked))
            return cls(ranked, every, every)
        rows = np.union1d(ranked, reference)  # both sorted and unique, as candidates() returns them
        return cls(rows, np.searchsorted(rows, ranked), np.searchsorted(rows, reference))


def boilerplate(manifest: Manifest) -> np.ndarray:
    """Chunk rows no ranking shows: sections repeated across the folder's notes (see boilerplate.py), worked out
    once per loaded index (`IndexView.derived`)."""
    return boilerplate_rows(manifest.chunks)


def candidates(
    index: IndexView,
    queries: dict[int, np.ndarray],
    lexical: LexicalRanking | None,
    n: int,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """The rows every channel ranks: each channel's n best, from the ANN indexes, or, under filters, by exact scores
    of the allowed rows alone (a filtered-out chunk must never take a candidate's place). Boilerplate is never one."""
    hidden = index.derived(boilerplate)
    if allowed is not None:
        allowed = np.setdiff1d(allowed, hidden)
        return allowed if len(allowed) <= n else filtered_candidates(index, queries, lexical, n, allowed)
    total = len(index.manifest.chunks)
    if total <= n:
        return np.setdiff1d(np.arange(total), hidden)
    found: list[np.ndarray] = []
    owners = index.part_owners
    for model, vector in queries.items():
        found.append(index.nearest(matrix_name(model, "chunks"), vector, n))
        found.append(owners[index.nearest(matrix_name(model, "parts"), vector, n)])
    if lexical is not None:  # even with nothing matched, so lexical mode always has candidates
        found.append(lexical.top(n))
    return np.setdiff1d(np.concatenate(found), hidden)


def best_of(rows: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    return rows[np.argpartition(-scores, n - 1)[:n]] if len(rows) > n else rows


def filtered_candidates(
    index: IndexView, queries: dict[int, np.ndarray], lexical: LexicalRanking | None, n: int, allowed: np.ndarray
) -> np.ndarray:
    """Each channel's n best among the allowed rows, scored exactly: one product over the allowed vectors, which
    for a filter that keeps most of the corpus costs what a flat search does (see bench/filters.py)."""
    parts, _ = parts_of(index, allowed)
    owners = index.part_owners
    found: list[np.ndarray] = []
    for model, vector in queries.items():
        found.append(best_of(allowed, index.scores(matrix_name(model, "chunks"), vector[0], allowed), n))
        found.append(owners[best_of(parts, index.scores(matrix_name(model, "parts"), vector[0], parts), n)])
    if lexical is not None:
        found.append(best_of(allowed, lexical.of(allowed), n))
    return np.unique(np.concatenate(found))


def parts_of(index: IndexView, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(part rows of these chunks in order, number of parts of each chunk)."""
    offsets = index.part_offsets
    counts = offsets[rows + 1] - offsets[rows]
    starts = np.repeat(offsets[rows] - np.cumsum(counts) + counts, counts)
    return starts + np.arange(int(counts.sum())), counts


def dense_views(index: IndexView, model: int, vector: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Cosine of the question with each candidate's whole text, best part, and section heading."""
    q = vector[0]
    section = index.scores(matrix_name(model, "chunks"), q, rows)
    parts, counts = parts_of(index, rows)
    scored = index.scores(matrix_name(model, "parts"), q, parts)
    best = np.maximum.reduceat(scored, np.cumsum(counts) - counts) if len(rows) else scored
    heading_rows = index.chunk_questions[rows]
    titled = heading_rows >= 0
    heading = section.copy()  # untitled text (a corpus may have no headings at all): its own text stands in
    heading[titled] = index.scores(matrix_name(model, "questions"), q, heading_rows[titled])
    return {"section": section, "part": best.astype(np.float32), "heading": heading}


def late_interaction(index: IndexView, query_tokens: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """MaxSim (ColBERT-style) of the question's tokens against each chunk's best part: every question word must
    find its match in one passage, which a single pooled vector can blur. One matrix product for all parts."""
    parts, counts = parts_of(index, rows)
    sims, lengths = index.token_scores(parts, query_tokens)
    keep = lengths > 0  # a part with no tokens scores nothing
    if not keep.any():
        return np.full(len(rows), -1.0, dtype=np.float32)
    per_part = np.full(len(parts), -1.0, dtype=np.float32)
    kept = lengths[keep]
    per_part[keep] = np.maximum.reduceat(sims, np.cumsum(kept) - kept, axis=1).mean(axis=0)
    return np.maximum.reduceat(per_part, np.cumsum(counts) - counts)


Groups = list[
    tuple[np.ndarray, np.ndarray]
]  # per language: (its positions in rows, its positions in rows of the basis)


def chunk_korean(manifest: Manifest) -> np.ndarray:
    """Which chunks are in Korean, for ranking to normalise each language on its own, worked out once per loaded
    index (`IndexView.derived`)."""
    return passage_languages(f"{c.heading}\n{c.text}" for c in manifest.chunks)


def language_groups(index: IndexView, rows: np.ndarray, basis: np.ndarray) -> Groups:
    """The candidates by passage language, when both Korean and English ones are many enough to be measured;
    else none, and every channel is normalised over all candidates as before (a Korean folder with a few English
    notes, or the reverse)."""
    korean = index.derived(chunk_korean)[rows]
    groups = [(np.flatnonzero(korean == flag), basis[korean[basis] == flag]) for flag in (True, False)]
    return groups if all(len(reference) >= MIN_LANGUAGE for _, reference in groups) else []


def centred(values: np.ndarray, basis: np.ndarray, groups: Groups) -> np.ndarray:
    """A dense channel with each language's candidates shifted to one mean: multilingual encoders score a passage
    in the question's language higher than an equally relevant one in another (Korean questions over a folder of
    Korean and English docs: e5 put Korean passages first that only shared the topic). The spread within a language
    is kept, so the best of each still stands out as much as it did."""
    if not groups:
        return values
    out = values.astype(np.float64)
    overall = float(values[basis].mean())
    for members, reference in groups:
        out[members] += overall - float(values[reference].mean())
    return out


def lexical_z(bm25: np.ndarray, basis: np.ndarray, groups: Groups, weights: tuple[float, float]) -> np.ndarray:
    """BM25 winsorised (over all candidates, or within each language) and weighted by the coverage the question
    has where it is scored (`weights`: in Korean passages, in the others).

    In a folder of two languages BM25 only re-orders passages within each language: each language's best match
    gets the same contribution. A question matches words only in passages of its own language (and a few technical
    terms elsewhere), so a Korean question gave any Korean passage that shared one word with it (데비안) a lift that
    no English passage could earn, and the English answer dense ranked first fell to 2nd-4th (Korean questions
    about the English manual of pdfdocs: R@1 10 of 16, dense 13). Each language's channel is weighted by the share
    of the question's words a passage in it could hold (`LexicalRanking.foreign` for the English ones)."""
    if not groups:
        return weights[0] * winsorised(bm25, bm25[basis])
    z = np.zeros(len(bm25))
    for (members, reference), weight in zip(groups, weights):
        z[members] = weight * (winsorised(bm25[members], bm25[reference]) - winsorised(bm25[reference]).max())
    return z


def top(scores: np.ndarray, among: np.ndarray, n: int) -> np.ndarray:
    """The n positions of among with the highest scores, best first (ties in order)."""
    return among[np.argsort(-scores[among], kind="stable")[:n]]


def rank(query: Query, settings: RankSettings, explain: bool = False) -> Ranked:
    """All candidate chunks, best first, with the channel contributions when explain is set."""
    index, queries, lexical, query_tokens = query.index, query.vectors, query.lexical, query.tokens
    ranked = candidates(index, queries, lexical, settings.candidates, query.allowed)
    if not len(ranked):  # filters that let nothing through
        return Ranked(ranked, np.zeros(0, dtype=np.float32))
    unfiltered = None if query.allowed is None else candidates(index, queries, lexical, settings.candidates)
    pool = Pool.of(ranked, unfiltered)
    rows, shown, basis = pool.rows, pool.shown, pool.basis
    parts: dict[str, np.ndarray] = {}
    details: dict[str, dict[str, np.ndarray]] = {}
    groups = language_groups(index, rows, basis) if settings.by_language else []
    if settings.mode != "lexical":
        for model, vector in queries.items():
            views = dense_views(index, model, vector, rows)
            dense = (
                settings.section * views["section"]
                + settings.part * views["part"]
                + settings.heading * views["heading"]
            )
            name = index.manifest.models[model].name
            details[name] = {**views, "score": dense}
            single = settings.mode == "dense" and len(queries) == 1
            parts[name] = dense if single else zscore(centred(dense, basis, groups), dense[basis]) / len(queries)
    if settings.mode != "dense" and lexical is not None:
        bm25 = lexical.of(rows)
        if settings.mode == "lexical":
            parts["bm25"] = bm25
        else:
            weights = (settings.lexical * lexical.coverage, settings.lexical * lexical.foreign)
            parts["bm25"] = lexical_z(bm25, basis, groups, weights)
        details["bm25"] = {"score": bm25, "coverage": np.full(len(rows), lexical.coverage)}
    fused = np.sum(list(parts.values()), axis=0) if parts else np.zeros(len(rows))
    head, reference_head = top(fused, shown, settings.rerank), top(fused, basis, settings.rerank)
    if query_tokens is not None and len(query_tokens) and index.has_tokens and len(reference_head) > 1:
        scored = np.union1d(head, reference_head)
        maxsim = np.zeros(len(rows), dtype=np.float32)
        maxsim[scored] = late_interaction(index, query_tokens, rows[scored])
        first = zscore(fused[head], fused[reference_head])
        second = zscore(maxsim[head], maxsim[reference_head])
        details["late"] = {"maxsim": maxsim}
        parts["late"] = np.zeros(len(rows))
        parts["late"][head] = 0.5 * second + 0.5 * first - fused[head]  # the head's share, so shares still add up
        rest = np.setdiff1d(shown, head)
        if len(rest):  # everything below the re-ranked head stays below it, in its first-stage order
            shift = (0.5 * first + 0.5 * second).min() - fused[rest].max() - 1e-3
            parts["late"][rest] = shift
        fused = fused + parts["late"]
    order = shown[np.argsort(-fused[shown], kind="stable")]
    if settings.mode == "lexical" and lexical is not None:  # a passage that shares no word is no lexical answer
        order = order[details["bm25"]["score"][order] > 0]
    result = Ranked(rows[order], fused[order].astype(np.float32))
    if explain:
        for i in order:
            result.explain.append(
                {
                    channel: {k: round(float(v[i]), 4) for k, v in values.items()}
                    | {"contribution": round(float(parts[channel][i]), 4)}
                    for channel, values in details.items()
                }
            )
    return result


def best_passages(chunks: Ranked, owner: np.ndarray) -> dict[int, tuple[float, int]]:
    """Each question in a ranking, by its best chunk's (score, row); rows come best first."""
    answer: dict[int, tuple[float, int]] = {}
    for row, score in zip(chunks.rows, chunks.scores):
        question = int(owner[row])
        if question >= 0 and question not in answer:
            answer[question] = (float(score), int(row))
    return answer


def asks_questions(index: IndexView, allowed: np.ndarray | None) -> bool:
    """Whether the notes in play are Q&A notes: at least QA_SHARE of their chunks answer a question. One note that
    asks something in a folder of journals or documentation does not make the folder a Q&A folder."""
    owners = index.chunk_questions if allowed is None else index.chunk_questions[allowed]
    return len(owners) > 0 and float(np.mean(owners >= 0)) >= QA_SHARE


def rank_questions(query: Query, settings: RankSettings, explain: bool = False) -> Ranked:
    """Sections by how alike their question (heading) is to the asked one, and how well their answer matches;
    each with its best passage, which is what is shown: a long section's whole body is no answer to read.

    A heading alone is short and often elliptic ("배치사이즈"), and an answer alone may fit a different question,
    so both count equally, each standardised over the questions the unfiltered question has in play (as rank()
    does its channels: a filter leaving one question scored it 0).
    """
    owner = query.index.chunk_questions
    answer = best_passages(rank(query, settings), owner)
    if not answer:
        return Ranked(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    known = answer if query.allowed is None else best_passages(rank(replace(query, allowed=None), settings), owner)
    pool = Pool.of(np.array(sorted(answer), dtype=np.int64), None if known is answer else np.array(sorted(known)))
    rows = pool.rows[pool.shown]
    heading = np.zeros(len(pool.rows))
    if settings.mode != "lexical":
        for model, vector in query.vectors.items():
            cosine = query.index.scores(matrix_name(model, "questions"), vector[0], pool.rows)
            heading += zscore(cosine, cosine[pool.basis]) / len(query.vectors)
    scores = np.array([answer[int(r)][0] for r in rows])
    reference = np.array([known[int(r)][0] for r in pool.rows[pool.basis]])
    shares = {
        "question": 0.5 * zscore(heading[pool.shown], heading[pool.basis]),
        "answer": 0.5 * zscore(scores, reference),
    }
    fused = shares["question"] + shares["answer"]
    order = np.argsort(-fused, kind="stable")
    best = np.array([answer[int(r)][1] for r in rows[order]], dtype=np.int64)
    ranked = Ranked(rows[order], fused[order].astype(np.float32), passages=best)
    if explain:
        ranked.explain = [{k: {"contribution": round(float(v[i]), 4)} for k, v in shares.items()} for i in order]
    return ranked
