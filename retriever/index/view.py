"""The seam between ranking and where an index lives: what a question reads of an index.

Ranking asks an `IndexView` for nearest rows, rows of vectors, token vectors of parts and lexical scores, and never
touches files or a server itself. Two stores implement it: local files with FAISS (`local/loaded.py`, the default) and a
Milvus collection set (`milvus/store.py`), which any number of stateless servers can share; `stores.py` picks one.
It is the index stage's, so the stores need nothing of the search stage: what search works out from the manifest
for itself (boilerplate rows, passage languages, the filters' note table) it keeps with the view through `derived`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

if TYPE_CHECKING:
    from .manifest import Manifest

T = TypeVar("T")
DERIVING = threading.RLock()  # one derivation at a time, as Python 3.11's cached_property lock made them


class LexicalRanking(Protocol):
    """BM25 scores of one question, without promising to hold them for every row: a server computes them for the
    rows asked about."""

    coverage: float  # share of the question's tokens that occur anywhere in the corpus
    foreign: float  # share of them not written in Hangul: what a passage that is not Korean could match

    def top(self, n: int) -> np.ndarray:
        """The n best-scoring chunk rows, best first (ties by row)."""
        ...

    def of(self, rows: np.ndarray) -> np.ndarray:
        """Scores of these chunk rows, float32."""
        ...


class IndexView(ABC):
    """A loaded index as ranking sees it: the manifest (rows, text, layout) and reads of its vectors."""

    manifest: Manifest
    generation: Hashable  # which build this is: a view whose generation is no longer live is reloaded

    @abstractmethod
    def nearest(self, matrix: str, vector: np.ndarray, k: int) -> np.ndarray:
        """Rows of the matrix nearest to vector ([1, dim]) by inner product, best first, at most k."""

    @abstractmethod
    def scores(self, matrix: str, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Inner products of vector ([dim]) with these rows of a matrix, float32, in the order asked. Ranking asks
        for scores, never vectors, so a server can compute them where the vectors are."""

    @property
    @abstractmethod
    def has_tokens(self) -> bool:
        """Whether the primary model's token vectors of the parts are kept, for the late re-rank."""

    @abstractmethod
    def token_scores(self, parts: np.ndarray, query_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(inner products of each question token with every token of these parts, [question tokens, part tokens]
        with the parts' tokens one after another in order; number of tokens of each part)."""

    @abstractmethod
    def lexical(self, question: str) -> LexicalRanking | None:
        """BM25 of the question, or None where the store could not keep the lexical channel."""

    @cached_property
    def part_owners(self) -> np.ndarray:
        """Chunk row of every part; parts are stored in chunk order."""
        return self.manifest.part_owners()

    @cached_property
    def part_offsets(self) -> np.ndarray:
        """offsets[c]:offsets[c+1] are the parts of chunk c."""
        return np.searchsorted(self.part_owners, np.arange(len(self.manifest.chunks) + 1))

    @cached_property
    def chunk_questions(self) -> np.ndarray:
        return np.asarray(self.manifest.chunk_question, dtype=np.int64)

    @cached_property
    def _derived(self) -> dict[Callable[[Manifest], Any], Any]:
        return {}

    def derived(self, make: Callable[[Manifest], T]) -> T:
        """make(manifest), worked out at its first use and kept with the view, which lives as long as its
        generation: what a reader derives from the manifest alone is worked out once per build, not per question."""
        kept = self._derived
        if make not in kept:
            with DERIVING:  # the first questions of a generation, at once: the work is done once, the others wait
                if make not in kept:
                    kept[make] = make(self.manifest)
        return kept[make]
