"""Token vectors for the late re-rank as product-quantisation codes: a byte per 8 dimensions instead of per one.

Token vectors are most of an index (86 % in int8 on the dev corpora), yet the re-rank only needs each token's
best match with a question token. Product quantisation (faiss's trainer; codes and decoding here, in numpy) keeps
a code of one byte for each 8-dimension slice: 48 bytes a token at 384 dimensions, an eighth of int8. The codebook
is trained once, on the first build's tokens, and kept by later builds (like the IVF lists), so segments written by
different builds decode alike; `index --full` trains afresh. A corpus too small to train on keeps int8 tokens, which
cost little at that size.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

SLICE = 8  # dimensions per code byte
CENTROIDS = 256
MIN_TRAIN = 16 * CENTROIDS  # tokens; fewer give centroids fitted to a handful of points each
# A big corpus trains on a sample, a small one on all its tokens, for a bounded time: at most MAX_TRAIN tokens through
# TRAIN_ROUNDS k-means iterations per slice, ~1.9 CPU-s on one thread whatever the corpus. Half of each (2^14 tokens,
# 8 rounds: 0.8 CPU-s) decoded tokens within cosine 0.001 as well (hecto 0.9621 vs 0.9630), but its codebooks moved
# rankings by up to two queries (pdfdocs --mode dense R@1 44 → 42 of 63, yakgwan's default 31 → 34 of 67); this
# size keeps every dev set within one query of the codebooks before it, in every mode (bench/quality.py --compared).
MAX_TRAIN = 1 << 15
TRAIN_ROUNDS = 10
INT8_SCALE = 127.0
POOL_FACTOR = 2  # unit vectors' components lie in [-1, 1]: one fixed scale stores them in a byte each


def pool_tokens(unit: np.ndarray, factor: int = POOL_FACTOR) -> np.ndarray:
    """A part's token vectors pooled by `factor`: clustered (Ward) into len/factor groups, each the unit mean of its
    tokens (Clavié et al., 2024). Near-duplicate tokens add nothing to a MaxSim but bytes."""
    if factor <= 1 or len(unit) <= 2:
        return unit
    from scipy.cluster.hierarchy import fcluster, linkage

    rows = np.asarray(unit, dtype=np.float32)
    groups = fcluster(linkage(rows, "ward"), t=max(1, -(-len(rows) // factor)), criterion="maxclust")
    sums = np.zeros((groups.max(), rows.shape[1]), dtype=np.float32)
    np.add.at(sums, groups - 1, rows)
    return (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(unit.dtype)


def int8_of(unit: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(unit, dtype=np.float32) * INT8_SCALE).astype(np.int8)


def training_sample(rows: np.ndarray) -> np.ndarray:
    """The rows a codebook is fitted to: all of them, or MAX_TRAIN drawn at random (the same ones on every build)."""
    if len(rows) <= MAX_TRAIN:
        return rows
    return rows[np.sort(np.random.default_rng(0).choice(len(rows), MAX_TRAIN, replace=False))]


_distances = threading.Lock()


@contextmanager
def blas_distances(faiss: ModuleType) -> Iterator[None]:
    """k-means assignment through faiss's BLAS kernel at any sample size. faiss picks its slower kernel for fewer
    than 128 000 floats (16 000 tokens of an 8-dimension slice), which made a corpus of 9 867 tokens train 5.7×
    slower than one of 16 384 (1.66 against 0.29 CPU-s, 5 rounds, the same codebook). The setting is process-wide
    and only chooses a kernel, so it is put back right after; the lock keeps two trainings from restoring it out
    of order."""
    with _distances:
        was = faiss.cvar.distance_compute_blas_threshold
        faiss.cvar.distance_compute_blas_threshold = 0
        try:
            yield
        finally:
            faiss.cvar.distance_compute_blas_threshold = was


@dataclass(frozen=True)
class Codebook:
    centroids: np.ndarray  # [slices, CENTROIDS, SLICE] float32

    @property
    def slices(self) -> int:
        return int(self.centroids.shape[0])

    @classmethod
    def train(cls, vectors: np.ndarray) -> Codebook | None:
        """A codebook fitted to these unit token vectors, or None when there are too few to fit one."""
        if len(vectors) < MIN_TRAIN or vectors.shape[1] % SLICE:
            return None
        import faiss

        vectors = training_sample(vectors)
        dim = vectors.shape[1]
        quantiser = faiss.ProductQuantizer(dim, dim // SLICE, 8)
        quantiser.cp.niter = TRAIN_ROUNDS
        quantiser.cp.min_points_per_centroid = (
            MIN_TRAIN // CENTROIDS
        )  # faiss warns on stderr below its 39, once a slice
        with blas_distances(faiss):
            quantiser.train(np.ascontiguousarray(vectors, dtype=np.float32))
        centroids = faiss.vector_to_array(quantiser.centroids).reshape(dim // SLICE, CENTROIDS, SLICE)
        return cls(centroids.astype(np.float16).astype(np.float32))  # as it will be stored

    @classmethod
    def load(cls, path: Path) -> Codebook:
        centroids = np.load(path, allow_pickle=False)
        if centroids.ndim != 3 or centroids.shape[1:] != (CENTROIDS, SLICE) or centroids.dtype != np.float16:
            raise ValueError(f"{path.name} is not a token codebook")
        return cls(centroids.astype(np.float32))

    def stored(self) -> np.ndarray:
        """As saved: float16, half the size, for decoded tokens that move by ~1e-4 (a corpus of a few hundred KB
        carries a codebook of 0.4 MB in float32)."""
        return self.centroids.astype(np.float16)

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """[rows, slices] uint8: each slice's nearest centroid (faiss's search, ~20× a numpy one)."""
        import faiss

        quantiser = faiss.ProductQuantizer(self.slices * SLICE, self.slices, 8)
        faiss.copy_array_to_vector(np.ascontiguousarray(self.centroids).ravel(), quantiser.centroids)
        return quantiser.compute_codes(np.ascontiguousarray(vectors, dtype=np.float32))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Unit vectors [rows, dim] float32 from codes [rows, slices]."""
        rows = self.centroids[np.arange(self.slices), np.asarray(codes, dtype=np.intp)].reshape(len(codes), -1)
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def token_floats(stored: np.ndarray, codebook: Codebook | None) -> np.ndarray:
    """Unit token vectors (float32) from a segment's rows: int8 at the fixed scale, or codes."""
    if stored.dtype == np.uint8:
        if codebook is None or stored.shape[1] != codebook.slices:
            raise ValueError("token codes without their codebook")
        return codebook.decode(stored)
    return np.asarray(stored, dtype=np.float32) * np.float32(1 / INT8_SCALE)
