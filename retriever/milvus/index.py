"""A published generation as ranking reads it: nearest rows, scores of candidates and token vectors, asked of the
server per question; nothing but the manifest and vocabulary is held locally."""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import StaleRead
from ..index.lexical import term_ids
from ..index.manifest import SPANS, Manifest
from ..index.tokencodes import token_floats
from ..index.view import IndexView
from .connection import Connected
from .layout import BATCH, MAX_LIMIT, PIECES_PER_PART, TOKEN_PIECE


def search_matrix(store: Connected, name: str, record: dict[str, Any], vector: np.ndarray, k: int) -> np.ndarray:
    """Rows nearest to one vector in a collection write_matrix made, as its record says to search it."""
    params = {"ef": max(int(record["ef"]), k)} if "ef" in record else {}
    found = store.call(
        store.client.search,
        name,
        data=[vector.tolist()],
        anns_field="v",
        limit=k,
        search_params={"metric_type": "IP", "params": params},
    )
    return np.array([hit["id"] for hit in found[0]], dtype=np.int64)


class MilvusIndex(IndexView):
    """A published generation, read through queries: nothing but the manifest and vocabulary is held locally."""

    def __init__(self, store: Connected, gen: str, manifest: Manifest, vocab: dict[str, int]) -> None:
        self.store, self.generation, self.manifest, self.vocab = store, gen, manifest, vocab
        self.prefix = gen.removesuffix("__meta")

    def collection(self, matrix: str) -> str:
        return f"{self.prefix}__{matrix.replace('.', '_')}"

    def nearest(self, matrix: str, vector: np.ndarray, k: int) -> np.ndarray:
        return search_matrix(self.store, self.collection(matrix), self.manifest.ann.get(matrix, {}), vector[0], k)

    def fetch(self, collection: str, rows: np.ndarray, fields: list[str]) -> dict[int, dict[str, Any]]:
        wanted = np.unique(rows).tolist()
        got: dict[int, dict[str, Any]] = {}
        for start in range(0, len(wanted), BATCH):
            for hit in self.store.call(
                self.store.client.query, collection, ids=wanted[start : start + BATCH], output_fields=fields
            ):
                got[int(hit["id"])] = hit
        return got

    def scored(self, collection: str, field: str, queries: list[Any], rows: np.ndarray, params: dict) -> np.ndarray:
        """Inner products of each query with each of these rows, [len(queries), len(rows)], taken by the server as a
        search restricted to the rows: only scores cross the wire, never vectors (fetching the vectors of a
        question's ~2 000 candidate parts instead cost most of its time). A row the search leaves out is nan."""
        wanted = np.unique(rows)
        column = {int(r): i for i, r in enumerate(wanted.tolist())}
        out = np.full((len(queries), len(wanted)), np.nan, dtype=np.float32)
        for start in range(0, len(wanted), MAX_LIMIT):
            some = wanted[start : start + MAX_LIMIT].tolist()
            found = self.store.call(
                self.store.client.search,
                collection,
                data=queries,
                anns_field=field,
                limit=len(some),
                filter=f"id in {some}",
                search_params={
                    "metric_type": "IP",
                    "params": {**params, **({"ef": len(some)} if "ef" in params else {})},
                },
            )
            for q, hits in enumerate(found):
                for hit in hits:
                    out[q, column[int(hit["id"])]] = hit["distance"]
        return out[:, np.searchsorted(wanted, rows)]

    def vectors(self, collection: str, rows: np.ndarray, dim: int) -> np.ndarray:
        got = self.fetch(collection, rows, ["v"])
        try:
            return np.array([got[int(r)]["v"] for r in rows], dtype=np.float32).reshape(len(rows), dim)
        except KeyError as exc:
            raise StaleRead(
                f"Milvus store {self.store.label} lacks row {exc} of {collection}; {self.store.rebuild_hint}"
            ) from exc

    def exact(self, collection: str, queries: np.ndarray, rows: np.ndarray, params: dict) -> np.ndarray:
        """scored, with any row an approximate index skipped computed here from its fetched vector."""
        sims = self.scored(collection, "v", queries.tolist(), rows, params)
        missing = np.isnan(sims).any(axis=0)
        if missing.any():
            sims[:, missing] = queries @ self.vectors(collection, rows[missing], queries.shape[1]).T
        return sims

    def scores(self, matrix: str, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if not len(rows):
            return np.zeros(0, dtype=np.float32)
        record = self.manifest.ann.get(matrix, {})
        params = {"ef": int(record["ef"])} if "ef" in record else {}
        return self.exact(self.collection(matrix), np.asarray(vector, np.float32).reshape(1, -1), rows, params)[0]

    @property
    def has_tokens(self) -> bool:
        return SPANS in self.manifest.extras

    def token_scores(self, parts: np.ndarray, query_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fetched and scored here: a server-side search per question token (~16) over a re-rank's ~5 000 token
        rows cost Milvus Lite seconds, and fetching them as vectors (lists of Python floats) ~0.5 s; their int8
        bytes, a few pieces per part, decode in milliseconds."""
        counts = self.fetch(self.collection("m0.parts"), parts, ["tokens"])
        lengths = np.array([counts[int(p)]["tokens"] for p in parts], dtype=np.int64)
        dim = self.manifest.model.dim
        ids = [
            int(p) * PIECES_PER_PART + seq
            for p, n in zip(parts, lengths)
            for seq in range(-(-int(n) * dim // TOKEN_PIECE))
        ]
        got = self.fetch(f"{self.prefix}__tokens", np.array(ids, dtype=np.int64), ["blob"]) if ids else {}
        try:
            data = b"".join(base64.b64decode(got[i]["blob"]) for i in ids)
        except KeyError as exc:
            raise StaleRead(
                f"Milvus store {self.store.label} lacks token piece {exc}; {self.store.rebuild_hint}"
            ) from exc
        tokens = np.frombuffer(data, dtype=np.int8).reshape(-1, dim)
        return np.asarray(query_tokens, dtype=np.float32) @ token_floats(tokens, None).T, lengths

    def lexical(self, question: str) -> SparseScores | None:
        if self.manifest.ann.get("bm25", {}).get("kind") == "none":
            return None
        ids, coverage, foreign = term_ids(self.vocab, question)
        return SparseScores(self, Counter(ids), coverage, foreign)


@dataclass
class SparseScores:
    """BM25 of one question from the sparse collection: a search for the best rows, a dot product for the rest.
    The stored weights are bm25s's own, so both equal the local store's scores."""

    index: MilvusIndex
    terms: Counter[int]  # the question's term ids, with repeats counted
    coverage: float
    foreign: float

    @property
    def collection(self) -> str:
        return f"{self.index.prefix}__bm25"

    def top(self, n: int) -> np.ndarray:
        total = len(self.index.manifest.chunks)
        scored: list[tuple[float, int]] = []
        if self.terms:
            query = {int(t): float(c) for t, c in self.terms.items()}
            found = self.index.store.call(
                self.index.store.client.search,
                self.collection,
                data=[query],
                anns_field="s",
                limit=min(n, total),
                search_params={"metric_type": "IP", "params": {"drop_ratio_search": 0.0}},
            )
            scored = sorted((-float(hit["distance"]), int(hit["id"])) for hit in found[0])
        rows = [row for _, row in scored]
        if len(rows) < min(n, total):  # rows sharing no term score 0, and come in row order, as locally
            taken = set(rows)
            rows += [r for r in range(total) if r not in taken][: min(n, total) - len(rows)]
        return np.array(rows, dtype=np.int64)

    def of(self, rows: np.ndarray) -> np.ndarray:
        if not self.terms or not len(rows):
            return np.zeros(len(rows), dtype=np.float32)
        query = {int(t): float(c) for t, c in self.terms.items()}
        sims = self.index.scored(self.collection, "s", [query], rows, {"drop_ratio_search": 0.0})[0]
        return np.nan_to_num(sims, nan=0.0)  # a chunk sharing no term with the question is not returned: it scores 0
