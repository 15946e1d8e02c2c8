"""Nearest-neighbour search over unit vectors, behind one small interface so the FAISS index type can follow
corpus size without the rest of the code noticing."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

from .rowfile import RowReader

BLOCK = 8192  # vectors added per call while building, read from disk a block at a time


class VectorIndex(Protocol):
    kind: str  # recorded in the manifest, so a load picks the same implementation

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each [len(queries), min(k, len)], best first; scores are inner products."""
        ...

    def save(self, path: Path) -> None: ...


class FlatIndex:
    """Exact inner-product search: on unit vectors that is cosine, and at notes scale it is already sub-ms."""

    kind = "flat-ip"

    def __init__(self, index: faiss.Index) -> None:
        self.index = index

    @classmethod
    def build(cls, vectors: RowReader) -> FlatIndex:
        index = faiss.IndexFlatIP(vectors.dim)
        for block in vectors.blocks(BLOCK):
            index.add(np.ascontiguousarray(block, dtype=np.float32))
        return cls(index)

    @classmethod
    def load(cls, path: Path) -> FlatIndex:
        return cls(faiss.read_index(str(path)))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self))
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, rows

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))


KINDS: dict[str, type[FlatIndex]] = {FlatIndex.kind: FlatIndex}


def build_index(vectors: RowReader) -> VectorIndex:
    """The factory that will pick an approximate index once corpora grow past what exact search serves fast."""
    return FlatIndex.build(vectors)


def load_index(kind: str, path: Path) -> VectorIndex:
    return KINDS[kind].load(path)
