"""An index loaded from local files for questions: vectors and token codes memory-mapped, FAISS and BM25 in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..index.manifest import SPANS, Manifest
from ..index.tokencodes import Codebook, token_floats
from ..index.vectorfile import dequantise
from ..index.view import IndexView

if TYPE_CHECKING:
    from ..index.lexical import LexicalScores


@dataclass
class LoadedIndex(IndexView):
    """An index read from local files: vectors and token vectors memory-mapped, FAISS indexes and BM25 loaded."""

    manifest: Manifest
    vectors: dict[str, tuple[np.ndarray, np.ndarray]]  # matrix name → int8 codes [rows, dim], scales [rows]
    ann: dict[str, Any]  # matrix name → VectorIndex
    lexical_index: Any  # LexicalIndex
    path: Path
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    segments: list[np.ndarray] = field(default_factory=list)  # token vectors, memory-mapped
    codebook: Codebook | None = None

    @property
    def generation(self) -> Path:  # type: ignore[override]
        return self.path

    def nearest(self, matrix: str, vector: np.ndarray, k: int) -> np.ndarray:
        found = self.ann[matrix].search(vector, k)[1][0]
        return found[found >= 0]

    def scores(self, matrix: str, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        codes, scales = self.vectors[matrix]
        return (codes[rows].astype(np.float32) @ vector) * scales[rows]

    def stored(self, matrix: str, rows: slice | np.ndarray) -> np.ndarray:
        """Rows of a matrix as float32, as a question scores them."""
        codes, scales = self.vectors[matrix]
        return dequantise(codes[rows], scales[rows])

    @property
    def has_tokens(self) -> bool:
        return SPANS in self.extras

    def token_scores(self, parts: np.ndarray, query_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        spans = self.extras[SPANS][parts]
        lengths = spans[:, 2] - spans[:, 1]
        blocks = [
            token_floats(self.segments[seg][start:stop], self.codebook) for seg, start, stop in spans[lengths > 0]
        ]
        gathered = np.concatenate(blocks) if blocks else np.zeros((0, self.manifest.model.dim), np.float32)
        return np.asarray(query_tokens, dtype=np.float32) @ gathered.T, lengths

    def lexical(self, question: str) -> LexicalScores:
        return self.lexical_index.score(question)


def check_spans(
    spans: np.ndarray | None, parts: int, segments: list[np.ndarray], codebook: Codebook | None = None
) -> None:
    """ValueError unless every part's token rows lie inside a segment the index holds, and every segment of codes
    has the codebook that decodes it."""
    for segment in segments:
        if segment.dtype == np.uint8 and (codebook is None or segment.shape[1] != codebook.slices):
            raise ValueError("a token segment holds codes that the index's codebook does not decode")
    if spans is None:
        return
    if spans.shape != (parts, 3):
        raise ValueError(f"{SPANS} has shape {spans.shape}, not {(parts, 3)}")
    segment, start, stop = spans[:, 0], spans[:, 1], spans[:, 2]
    if parts and (segment.min() < 0 or segment.max() >= len(segments)):
        raise ValueError(f"{SPANS} names a token segment the index does not hold")
    rows = np.array([len(s) for s in segments], dtype=np.int64)
    if parts and ((start < 0) | (start > stop) | (stop > rows[segment])).any():
        raise ValueError(f"{SPANS} points outside its token segments")


def mapped(path: Path) -> np.ndarray:
    """A read-only memory map of an .npy, as a plain ndarray over it: np.memmap's own slicing costs ~5 µs a slice
    in Python, and a question slices the token vectors of every re-ranked part."""
    return np.asarray(np.load(path, allow_pickle=False, mmap_mode="r"))
