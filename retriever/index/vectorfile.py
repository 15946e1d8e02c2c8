"""Vector matrices on disk as int8 rows with a scale per row: a quarter of float32, half of float16.

A row is stored as round(v / s) with s = max|v| / 127, so its largest component keeps all 8 bits whatever the
row's norm. e5 and USE vectors dequantised this way keep cosine 0.9999 with their float32 originals, and every dev
set ranks as with float16 (README, "Index size"). The codes are `<name>.npy` ([rows, dim] int8) and the scales
`<name>.scale.npy` ([rows, 1] float32), both row files (`rowfile`), so builds stream them a block at a time.
Quantising a dequantised row gives the same codes back, so rows an update copies from the previous index stay as
they were.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .rowfile import RowReader, RowWriter

LEVELS = 127.0
SCALES = ".scale"  # suffix of the scales' file: `m0.parts.npy` has `m0.parts.scale.npy`


def files_of(name: str) -> tuple[str, str]:
    """The two files a matrix is stored in, relative to its generation."""
    return f"{name}.npy", f"{name}{SCALES}.npy"


def quantise(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes [rows, dim] int8, scales [rows, 1] float32) of float rows."""
    rows = np.asarray(block, dtype=np.float32)
    scales = (np.abs(rows).max(axis=1, keepdims=True) / np.float32(LEVELS)).astype(np.float32)
    codes = np.round(rows / np.where(scales > 0, scales, np.float32(1))).astype(np.int8)
    return codes, scales


def dequantise(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    return np.asarray(codes, dtype=np.float32) * np.asarray(scales, dtype=np.float32).reshape(-1, 1)


class VectorWriter:
    """Appends float blocks to a matrix, quantised; the row count is known at the end (see RowWriter)."""

    dtype = np.dtype(np.float32)  # what it takes: float rows

    def __init__(self, folder: Path, name: str, dim: int) -> None:
        codes, scales = files_of(name)
        self.dim = dim
        self.codes = RowWriter(folder / codes, dim, np.int8, durable=False)  # a generation's: its commit fsyncs
        self.scales = RowWriter(folder / scales, 1, np.float32, durable=False)

    @property
    def rows(self) -> int:
        return self.codes.rows

    def append(self, block: np.ndarray) -> None:
        codes, scales = quantise(np.asarray(block, dtype=np.float32).reshape(-1, self.dim))
        self.codes.append(codes)
        self.scales.append(scales)

    def close(self) -> None:
        self.codes.close()
        self.scales.close()


class VectorReader:
    """Reads row ranges of a stored matrix as float32, by file reads (a RowReader of float rows)."""

    def __init__(self, folder: Path, name: str) -> None:
        codes, scales = files_of(name)
        self.path = folder / codes
        self.codes = RowReader(folder / codes)
        try:
            self.scales = RowReader(folder / scales)
        except BaseException:
            self.codes.close()
            raise
        if self.codes.dtype != np.int8 or self.scales.dtype != np.float32 or self.scales.dim != 1:
            self.close()
            raise ValueError(f"{self.path.name} is not an int8 matrix with float32 row scales")
        if self.scales.rows != self.codes.rows:
            self.close()
            raise ValueError(f"{self.path.name} has {self.codes.rows} rows but {self.scales.rows} scales")
        self.rows, self.dim, self.dtype = self.codes.rows, self.codes.dim, np.dtype(np.float32)

    def read(self, start: int, stop: int) -> np.ndarray:
        return dequantise(self.codes.read(start, stop), self.scales.read(start, stop))

    def blocks(self, size: int) -> Iterable[np.ndarray]:
        for start in range(0, self.rows, size):
            yield self.read(start, min(start + size, self.rows))

    def close(self) -> None:
        self.codes.close()
        self.scales.close()


def mapped_matrix(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, scales [rows]) memory-mapped, for questions: a question reads a few hundred rows of each."""
    codes, scales = files_of(name)
    held = np.asarray(np.load(folder / codes, allow_pickle=False, mmap_mode="r"))
    factors = np.asarray(np.load(folder / scales, allow_pickle=False, mmap_mode="r"))
    if held.dtype != np.int8 or held.ndim != 2 or factors.shape != (len(held), 1) or factors.dtype != np.float32:
        raise ValueError(f"{codes} is not an int8 matrix with one float32 scale per row")
    return held, factors[:, 0]
