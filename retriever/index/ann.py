"""Nearest-neighbour search over unit vectors, behind one small interface so the FAISS index type can follow
corpus size without the rest of the code noticing.

Small matrices get exact search. Large ones get IVF with float16 scalar quantization, the one candidate bench/scale.py
measured inside every target at 1 000 000 × 384 (p50 < 10 ms, recall@10 ≥ 0.95, ≤ 1 GiB) that also supports
removal: 8-bit codes miss the recall, exact search the latency and memory, and HNSW cannot remove rows (FAISS
raises; it also reached only recall@10 0.94-0.95 at efSearch 128 on 100k rows). Either way a row number in a result
is a row of the matrix the index was built from, and `add`/`remove` keep it so as rows are appended to or deleted
from that matrix.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from math import log2, sqrt
from pathlib import Path
from typing import ClassVar, Protocol, Self

import faiss
import numpy as np

from .rowfile import Rows
from .vectorfile import VectorReader

BLOCK = 8192  # vectors added per call while building, read from disk a block at a time

# Measured by bench/scale.py (2 cores shared with another busy process, e5-shaped vectors, one query at a time):
# exact search costs 0.5 / 1.1 / 2.6 / 7.7 ms at 10k / 20k / 50k / 100k rows on one FAISS thread (2-32 ms on
# FAISS's default two threads, which wait on the busy cores), IVF 0.25-0.4 ms from 20k to 100k. Below 20k the exact
# index is at most ~1 ms, needs no training and has recall 1; IVF there could not train enough lists (see
# TRAIN_PER_LIST) for nprobe to skip much of the data.
THRESHOLD = 20_000
# nlist ≈ 4·√rows as a power of two: 4096 lists at 1M rows, 1024 at 100k, 256 at 20k. At 1M, 2048 lists
# scanning the same share as 4096 with nprobe 64 (nprobe 32) gave recall@10 0.959 against 0.988.
LISTS_PER_SQRT_ROW = 4
# Lists probed per query. At 1M rows recall@10 was 0.953 / 0.973 / 0.988 / 0.995 with nprobe 16 / 32 / 64 / 128
# at p50 0.5 / 0.8 / 1.1 / 1.8 ms; 64 keeps a margin for corpora less regular than the benchmark's.
NPROBE = 64
# Codes per vector. SQ8 (384 B) peaked at recall@10 0.953-0.959 at 1M rows (nprobe 64-128): e5 vectors are so
# alike (mean cosine 0.86) that the top ten differ in the third decimal, below 8-bit resolution. SQfp16 (768 B)
# reaches 0.988 in 0.75 GiB; any refine stage over SQ8 (float16: +0.75 GiB, float32: +1.5 GiB) passes 1 GiB.
ENCODING = "SQfp16"
ENCODINGS = {"SQ8": faiss.ScalarQuantizer.QT_8bit, "SQfp16": faiss.ScalarQuantizer.QT_fp16}
# k-means training rows per list: FAISS warns below 39, and more only lengthens training (~164k rows at 4096
# lists: the 1M build takes ~5 min, most of it training and assigning rows to lists). They are read as evenly
# spaced runs, so training sees the whole matrix in a few large reads.
TRAIN_PER_LIST = 40
TRAIN_RUN = 1024
# A build keeps the previous build's k-means lists for the same matrix and model instead of training again, for as
# long as they fit: the row count still asks for the same nlist, and at most this share of the rows joined after the
# training. Training is most of a small re-index (5.6 s of 8.3 s for one edited note of 10 000, whose 40 000 part
# rows get 256 lists), while assigning rows to trained lists takes a fraction of a second; centroids learnt from
# most of the same rows still split them evenly.
RETRAIN_AFTER = 0.5


class VectorIndex(Protocol):
    kind: str  # recorded in the manifest, so a load picks the same implementation

    @property
    def params(self) -> dict[str, int | float | str]:
        """What the manifest records about how this index searches, e.g. {"nlist": 4096, "nprobe": 64}."""
        ...

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each [len(queries), min(k, len)], best first; scores are inner products."""
        ...

    def add(self, vectors: np.ndarray) -> None:
        """Append rows len .. len + n - 1, as appended to the matrix."""
        ...

    def remove(self, rows: np.ndarray) -> None:
        """Delete these rows; later rows shift down, as when the same rows are deleted from the matrix."""
        ...

    def save(self, path: Path) -> None: ...

    def record(self) -> dict[str, int | float | str]:
        """What the manifest keeps: kind and params, and whatever a later build needs to know of this one."""
        ...


class FaissIndex:
    """What both kinds share: FAISS's own file format (no pickle), and search that copes with k > len."""

    kind: ClassVar[str]

    def __init__(self, index: faiss.Index) -> None:
        self.index = index

    @classmethod
    def load(cls, path: Path) -> Self:
        return cls(faiss.read_index(str(path)))

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    def record(self) -> dict[str, int | float | str]:
        return {"kind": self.kind, **self.params}

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.index.d)
        k = min(k, len(self))
        if k <= 0:  # faiss asserts k > 0
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        return self.index.search(queries, k)

    def checked(self, rows: np.ndarray) -> np.ndarray:
        """Sorted distinct rows; a row the index does not have means the caller's matrix and this index differ."""
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if rows.size and (rows[0] < 0 or rows[-1] >= len(self)):
            raise ValueError(f"cannot remove rows outside 0..{len(self) - 1}")
        return rows


class FlatIndex(FaissIndex):
    """Exact inner-product search: on unit vectors that is cosine, and at notes scale it is already sub-ms.

    Its file would be a second copy of the matrix, so none is written: a load builds it from the matrix beside
    the path (`m0.chunks` for `m0.chunks.faiss`), in ~10 ms at the 20 000 rows it is used up to."""

    kind = "flat-ip"

    @classmethod
    def load(cls, path: Path) -> FlatIndex:
        vectors = VectorReader(path.parent, path.stem)
        try:
            return cls.build(vectors)
        finally:
            vectors.close()

    def save(self, path: Path) -> None:
        pass

    @classmethod
    def build(cls, vectors: Rows) -> FlatIndex:
        index = cls(faiss.IndexFlatIP(vectors.dim))
        for block in float_blocks(vectors):
            index.add(block)
        return index

    @property
    def params(self) -> dict[str, int | float | str]:
        return {}

    def add(self, vectors: np.ndarray) -> None:
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def remove(self, rows: np.ndarray) -> None:
        self.index.remove_ids(self.checked(rows))  # a flat index compacts, so later rows shift down already


class IVFIndex(FaissIndex):
    """Inverted lists of scalar-quantized vectors: k-means cells, of which a query scans the nprobe nearest.

    Rows are stored as explicit ids, so `remove` renumbers the ids that follow a removed row to keep them equal to
    matrix rows."""

    kind = "ivf-sq"
    unseen = 0  # rows added since the lists were trained

    @classmethod
    def build(
        cls,
        vectors: Rows,
        nlist: int | None = None,
        nprobe: int = NPROBE,
        encoding: str = ENCODING,
        training: Training | None = None,
    ) -> IVFIndex:
        """A new index of all rows; with `training`, into that index's lists and with its settings, no k-means."""
        if training is not None:
            previous = training.load()
            nlist, nprobe, encoding = previous.index.nlist, previous.index.nprobe, str(previous.params["sq"])
        nlist = nlist or lists_for(vectors.rows)
        index = faiss.index_factory(vectors.dim, f"IVF{nlist},{encoding}", faiss.METRIC_INNER_PRODUCT)
        if training is not None:  # a quantizer that already holds nlist centroids is not trained again
            index.quantizer.add(previous.index.quantizer.reconstruct_n(0, nlist))
            del previous
        index.train(training_sample(vectors, TRAIN_PER_LIST * nlist))
        index.nprobe = min(nprobe, nlist)
        # Every row's list first, so each list is allocated once at its final size: appended block by block, the
        # lists grow by doubling and the 1M index held 1.2 GiB after the build against 0.75 GiB once reloaded.
        assigned = np.concatenate([index.quantizer.assign(block, 1)[:, 0] for block in float_blocks(vectors)])
        lists = faiss.downcast_InvertedLists(index.invlists)
        for number, size in enumerate(np.bincount(assigned, minlength=nlist)):
            lists.resize(number, int(size))  # allocates exactly size entries; shrinking back keeps the capacity
            lists.resize(number, 0)
        start = 0
        for block in float_blocks(vectors):
            ids, cells = np.arange(start, start + len(block), dtype=np.int64), assigned[start : start + len(block)]
            # raw pointers: ids and cells must stay referenced until the call returns (faiss.contrib's
            # add_preassigned drops its ids array before using it)
            index.add_core(len(block), faiss.swig_ptr(block), faiss.swig_ptr(ids), faiss.swig_ptr(cells))
            start += len(block)
        built = cls(index)
        built.unseen = training.unseen if training is not None else 0
        return built

    @property
    def params(self) -> dict[str, int | float | str]:
        encoding = next(name for name, qtype in ENCODINGS.items() if qtype == self.index.sq.qtype)
        return {"nlist": int(self.index.nlist), "nprobe": int(self.index.nprobe), "sq": encoding}

    def record(self) -> dict[str, int | float | str]:
        return {**super().record(), "unseen": self.unseen}

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = super().search(queries, k)
        short = (rows < 0).any(axis=1)
        if short.any():  # the probed lists held fewer than k rows: scan every list rather than return holes
            every = faiss.SearchParametersIVF(nprobe=int(self.index.nlist))
            queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.index.d)
            scores[short], rows[short] = self.index.search(queries[short], rows.shape[1], params=every)
        return scores, rows

    def add(self, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index.add_with_ids(vectors, np.arange(len(self), len(self) + len(vectors), dtype=np.int64))

    def remove(self, rows: np.ndarray) -> None:
        rows = self.checked(rows)
        if not rows.size:
            return
        self.index.remove_ids(rows)
        lists = self.index.invlists
        for number in range(self.index.nlist):
            size = lists.list_size(number)
            if size:  # a view on the list's ids, renumbered in place: id - (removed rows before it)
                ids = faiss.rev_swig_ptr(lists.get_ids(number), size)
                ids -= np.searchsorted(rows, ids)


@dataclass(frozen=True)
class Training:
    """An earlier build's IVF index of the same matrix and model, whose trained lists a new build may keep."""

    path: Path
    nlist: int
    unseen: int  # rows the lists were not trained on, the new build's fresh rows included

    def fits(self, rows: int) -> bool:
        return lists_for(rows) == self.nlist and self.unseen <= RETRAIN_AFTER * rows

    def load(self) -> IVFIndex:
        """Its lists memory-mapped, not read: only the centroids and settings are wanted (a 1M-row index is
        0.75 GiB)."""
        return IVFIndex(faiss.read_index(str(self.path), faiss.IO_FLAG_MMAP))


def lists_for(rows: int) -> int:
    """A power of two near LISTS_PER_SQRT_ROW·√rows, but no more lists than rows can train (TRAIN_PER_LIST each)."""
    wanted = 2 ** round(log2(LISTS_PER_SQRT_ROW * sqrt(rows)))
    trainable = 2 ** int(log2(max(rows // TRAIN_PER_LIST, 1)))
    return max(1, min(wanted, trainable))


def float_blocks(vectors: Rows) -> Iterator[np.ndarray]:
    for block in vectors.blocks(BLOCK):
        yield np.ascontiguousarray(block, dtype=np.float32)


def training_sample(vectors: Rows, rows: int) -> np.ndarray:
    """At least `rows` rows, in evenly spaced runs across the matrix (all of it if the runs would not fit apart)."""
    runs = -(-rows // TRAIN_RUN)
    if runs * TRAIN_RUN >= vectors.rows:
        return np.concatenate(list(float_blocks(vectors)))
    starts = np.linspace(0, vectors.rows - TRAIN_RUN, runs).astype(np.int64)
    return np.concatenate([vectors.read(int(start), int(start) + TRAIN_RUN) for start in starts], dtype=np.float32)


KINDS: dict[str, type[FlatIndex | IVFIndex]] = {FlatIndex.kind: FlatIndex, IVFIndex.kind: IVFIndex}


def build_index(vectors: Rows, threshold: int | None = None, training: Training | None = None) -> VectorIndex:
    """Exact search below `threshold` rows (default THRESHOLD), where it is fast enough; IVF above, in the lists of
    `training` while they fit the rows."""
    if vectors.rows < (THRESHOLD if threshold is None else threshold):
        return FlatIndex.build(vectors)
    return IVFIndex.build(vectors, training=training if training is not None and training.fits(vectors.rows) else None)


def load_index(kind: str, path: Path) -> VectorIndex:
    return KINDS[kind].load(path)
