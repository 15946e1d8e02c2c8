"""Row-wise .npy files that are written and read a block at a time, so an index of any size is built in bounded
memory: nothing here maps or loads a whole matrix.

Reads go through plain file reads rather than a memory map on purpose: pages of a map count as the process's
resident memory for as long as it lives, while file reads leave them to the page cache.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
from numpy.lib import format as npy

LARGEST = 1 << 62  # a row count no index reaches: its header is the longest one we may need


def header(rows: int, dim: int, dtype: np.dtype) -> bytes:
    buffer = io.BytesIO()
    npy.write_array_header_1_0(
        buffer, {"descr": npy.dtype_to_descr(dtype), "fortran_order": False, "shape": (rows, dim)}
    )
    return buffer.getvalue()


class Rows(Protocol):
    """Row ranges of a 2-D matrix on disk: a RowReader, or a vectorfile.VectorReader that dequantises."""

    rows: int
    dim: int

    def read(self, start: int, stop: int) -> np.ndarray: ...

    def blocks(self, size: int) -> Iterable[np.ndarray]: ...

    def close(self) -> None: ...


class RowWriter:
    """Appends [n, dim] blocks to a .npy whose row count is known only at the end.

    The header is padded to a fixed length up front (numpy pads headers to 64 bytes, and no real row count needs
    more than the padding of the largest one) and rewritten with the final shape on close. `durable`: fsynced on
    close; not a build's scratch files, which the build reads back and removes before its commit.
    """

    def __init__(self, path: Path, dim: int, dtype: np.dtype | type = np.float32, durable: bool = True) -> None:
        self.path, self.dim, self.dtype, self.durable = path, dim, np.dtype(dtype), durable
        self.rows = 0
        self.reserved = len(header(LARGEST, dim, self.dtype))
        self.handle: BinaryIO = path.open("wb")
        self.handle.write(b"\0" * self.reserved)

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype).reshape(-1, self.dim)
        self.handle.write(block.tobytes())
        self.rows += len(block)

    def close(self) -> None:
        final = header(self.rows, self.dim, self.dtype)
        if len(final) != self.reserved:  # cannot happen with numpy's padding; a wrong file must not, either
            raise ValueError(f"npy header of {self.path} changed length")
        self.handle.seek(0)
        self.handle.write(final)
        self.handle.flush()
        if self.durable:
            os.fsync(self.handle.fileno())
        self.handle.close()


class RowReader:
    """Reads row ranges of a 2-D .npy by file reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: BinaryIO = path.open("rb")
        major, _ = npy.read_magic(self.handle)
        read = npy.read_array_header_1_0 if major == 1 else npy.read_array_header_2_0
        shape, fortran, self.dtype = read(self.handle)
        if fortran or len(shape) != 2:
            raise ValueError(f"{path} is not a row-major matrix")
        self.rows, self.dim = int(shape[0]), int(shape[1])
        self.offset = self.handle.tell()
        self.row_bytes = self.dim * self.dtype.itemsize

    def read(self, start: int, stop: int) -> np.ndarray:
        if not 0 <= start <= stop <= self.rows:
            raise ValueError(f"rows {start}:{stop} outside {self.path} ({self.rows} rows)")
        self.handle.seek(self.offset + start * self.row_bytes)
        data = self.handle.read((stop - start) * self.row_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(stop - start, self.dim)

    def blocks(self, size: int) -> Iterable[np.ndarray]:
        for start in range(0, self.rows, size):
            yield self.read(start, min(start + size, self.rows))

    def close(self) -> None:
        self.handle.close()


def gather(
    readers: Mapping[int, Rows], picks: list[tuple[int, int, int]], dim: int, dtype: np.dtype | type
) -> np.ndarray:
    """Rows [start, stop) of readers[source] for each (source, start, stop), concatenated in order; a run of picks
    that continue each other in one file is read at once, so copying an unchanged index is a few large reads."""
    blocks: list[np.ndarray] = []
    run: list[int] | None = None
    for source, start, stop in picks:
        if run and run[0] == source and run[2] == start:
            run[2] = stop
            continue
        if run:
            blocks.append(readers[run[0]].read(run[1], run[2]))
        run = [source, start, stop]
    if run:
        blocks.append(readers[run[0]].read(run[1], run[2]))
    return np.concatenate(blocks) if blocks else np.zeros((0, dim), dtype=dtype)
