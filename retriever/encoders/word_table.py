"""The word-embedding table of a converted BERT folder, read in place: both backends look up a text's own rows of
its 250 000 × 384 table and never need the rest, so it is memory-mapped from model.safetensors (safetensors' own
reader copies a tensor out whole, or a slice per call)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

WORDS = "embeddings.word_embeddings.weight"
SAFETENSORS_DTYPES = {"F16": np.float16, "F32": np.float32}


def word_table(weights: Path) -> np.ndarray:
    """The table inside a safetensors file (8-byte little-endian header length, then a JSON header of
    {name: {dtype, shape, data_offsets}}), memory-mapped and read only."""
    with weights.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        entry = json.loads(handle.read(length))[WORDS]
    start, _ = entry["data_offsets"]
    table = np.memmap(weights, SAFETENSORS_DTYPES[entry["dtype"]], "r", 8 + length + start, tuple(entry["shape"]))
    return np.asarray(table)


def word_rows(table: np.ndarray, ids: list[int]) -> np.ndarray:
    """The rows of these token ids as float32 (float16 widened exactly, as torch widens them on load)."""
    return table[np.asarray(ids)].astype(np.float32)
