"""The index format: what a generation holds, as the manifest records it, versioned and fingerprinted.

A manifest names the models (with their sources and prompts), the chunker settings, every chunk, part and question,
the data files with their checksums and the token segments; the fingerprint of models and chunker marks an index
stale when either changes. A local index keeps the header as JSON (`manifest.json`) and the rows in columns
(`metatable`); a Milvus store keeps it all as JSON, streamed a slice at a time. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any

import numpy as np

from ..encoders.base import ModelSpec
from ..reading.chunk import Chunk, Part
from ..reading.stamp import FileStamp
from .metatable import PartTable, Tables

FORMAT = "retriever-index"
VERSION = 7  # 3: token vectors in immutable segments shared between generations; 4: the manifest is checksummed;
# 5: token vectors in int8; 6: one pass per chunk (parts and headings pooled from it), token vectors as codes;
# 7: vectors in int8 with a scale per row, chunks' metadata in columns (metatable) beside a JSON header
COLLECTIONS = ("chunks", "parts", "questions")
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.sha256"  # SHA-256 of manifest.json: the one file the per-file checksums cannot cover
SPANS = "m0.part_token_spans"  # [parts, 3]: segment, first and end row of each part's token vectors
LEXICAL = "bm25"  # folder of the BM25 index inside a generation


@dataclass
class Manifest:
    models: list[ModelSpec]  # the first is the primary model: it sizes chunks and names the index
    chunker: dict[str, int]
    ann: dict[str, dict[str, Any]]  # matrix → its ANN index: {"kind": …, and how it searches, e.g. "nprobe"}
    files: dict[str, FileStamp]
    chunks: Sequence[Chunk]  # what `ask` returns
    parts: Sequence[Part]  # sub-chunks, scored inside their chunk, in chunk order
    questions: Sequence[Chunk]  # one per titled section, for `similar`; its vector is the heading's
    chunk_question: Sequence[int]  # row of each chunk's section in questions, or -1
    extras: list[str] = field(default_factory=list)  # further arrays by name, e.g. where each part's tokens are
    segments: list[str] = field(default_factory=list)  # token-vector files, shared by hard link across generations
    codebook: str = ""  # the array that decodes token codes (uint8 segments), kept across generations; "": none
    created_at: str = ""
    build_seconds: float = 0.0
    checksums: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # bytes of each checksummed file
    store: str = "faiss"  # which store holds the vectors: "faiss" (these files) or "milvus"
    collections: list[str] = field(default_factory=list)  # names of the folders it holds, "" for a single folder

    @property
    def model(self) -> ModelSpec:
        return self.models[0]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.models, self.chunker)

    def spec_of(self, matrix: str) -> ModelSpec:
        """The model whose vectors a matrix (`m<model>.<collection>`) holds."""
        return self.models[int(matrix.split(".")[0][1:])]

    def rows(self, collection: str) -> int:
        return len({"chunks": self.chunks, "parts": self.parts, "questions": self.questions}[collection])

    def matrices(self) -> dict[str, tuple[int, int]]:
        """Name → shape of every vector matrix the index holds: one per model and collection."""
        return {
            matrix_name(i, collection): (self.rows(collection), spec.dim)
            for i, spec in enumerate(self.models)
            for collection in COLLECTIONS
        }

    def check(self) -> None:
        """Raise ValueError unless the rows point where they may: whatever the checksum, a manifest that passes
        this can never send a question out of bounds."""
        chunks, questions = len(self.chunks), len(self.questions)
        owners = self.part_owners()
        chunk_question = np.asarray(self.chunk_question, dtype=np.int64)
        if not self.models or len(chunk_question) != chunks:
            raise ValueError("models or chunk_question do not match the chunks")
        if chunks and not (-1 <= chunk_question.min() and chunk_question.max() < questions):
            raise ValueError("chunk_question points outside the questions")
        steps = np.diff(owners)
        if chunks != (int(owners[-1]) + 1 if len(owners) else 0) or (len(owners) and owners[0] != 0):
            raise ValueError("parts do not cover the chunks")
        if ((steps < 0) | (steps > 1)).any():
            raise ValueError("parts are not in chunk order, one or more to every chunk")

    def part_owners(self) -> np.ndarray:
        """Chunk row of every part."""
        if isinstance(self.parts, PartTable):
            return self.parts.owners
        return np.fromiter((p.chunk for p in self.parts), dtype=np.int64, count=len(self.parts))

    def header(self) -> dict[str, Any]:
        """Everything but the rows of chunks, parts and questions."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "fingerprint": self.fingerprint,
            "models": [m.as_dict() for m in self.models],
            "chunker": self.chunker,
            "ann": self.ann,
            "created_at": self.created_at,
            "build_seconds": round(self.build_seconds, 3),
            "checksums": self.checksums,
            "sizes": self.sizes,
            "files": {path: fields_of(stamp) for path, stamp in self.files.items()},
            "extras": self.extras,
            "segments": self.segments,
            "codebook": self.codebook,
            "store": self.store,
            "collections": self.collections,
        }

    def to_json(self) -> dict[str, Any]:
        """The whole manifest as JSON, rows included (as a Milvus store keeps it)."""
        return {
            **self.header(),
            "chunks": [chunk_json(c) for c in self.chunks],
            "parts": [fields_of(p) for p in self.parts],
            "questions": [chunk_json(c) for c in self.questions],
            "chunk_question": [int(q) for q in self.chunk_question],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls.from_header(
            data,
            Tables(
                [chunk_from_json(c) for c in data["chunks"]],
                [chunk_from_json(c) for c in data["questions"]],
                [int(q) for q in data["chunk_question"]],
                [Part(**p) for p in data["parts"]],
            ),
        )

    @classmethod
    def from_header(cls, data: dict[str, Any], rows: Tables) -> Manifest:
        """A manifest of its header (JSON) and its rows, read from a local index's tables or from JSON."""
        return cls(
            models=[ModelSpec(**m) for m in data["models"]],
            chunker=dict(data["chunker"]),
            ann=ann_records(data["ann"], len(data["models"])),
            files={path: FileStamp(**stamp) for path, stamp in data["files"].items()},
            chunks=rows.chunks,
            parts=rows.parts,
            questions=rows.questions,
            chunk_question=rows.chunk_question,
            extras=[str(e) for e in data["extras"]],
            segments=[str(e) for e in data["segments"]],
            codebook=str(data["codebook"]),
            created_at=str(data["created_at"]),
            build_seconds=float(data["build_seconds"]),
            checksums=dict(data["checksums"]),
            sizes={str(k): int(v) for k, v in data.get("sizes", {}).items()},  # absent before sizes were kept
            store=str(data.get("store", "faiss")),
            collections=[str(c) for c in data.get("collections", [])],
        )


def ann_records(ann: Any, models: int) -> dict[str, dict[str, Any]]:
    if isinstance(ann, str):  # the first format-3 indexes recorded one kind for all matrices
        return {matrix_name(m, c): {"kind": ann} for m in range(models) for c in COLLECTIONS}
    return {str(name): dict(record) for name, record in ann.items()}


def matrix_name(model: int, collection: str) -> str:
    return f"m{model}.{collection}"


def fingerprint(models: list[ModelSpec], chunker: dict[str, int]) -> str:
    """What the index was built under (models, prompts, chunking): a change of any of them makes it stale."""
    blob = json.dumps({"v": VERSION, "models": [m.as_dict() for m in models], "chunker": chunker}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def chunk_json(chunk: Chunk) -> dict[str, Any]:
    return {**fields_of(chunk), "headings": list(chunk.headings), "tags": list(chunk.tags)}


def fields_of(record: Any) -> dict[str, Any]:
    """A flat dataclass's fields: `dataclasses.asdict` deep-copies each value, 1.1 s of a 10 000-note manifest."""
    return {name: getattr(record, name) for name in field_names(type(record))}


@cache
def field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(kind))


def write_json(handle: Any, data: dict[str, Any], slice_rows: int = 4096) -> None:
    """data as JSON, streamed: large lists a slice at a time through json.dumps (the C encoder). json.dump itself
    encodes in Python, ~10× slower, and one json.dumps of it all would hold a second copy of a manifest that runs
    to hundreds of MB at a million chunks."""
    handle.write("{")
    for number, (key, value) in enumerate(data.items()):
        handle.write(("," if number else "") + json.dumps(key) + ":")
        if isinstance(value, list) and len(value) > slice_rows:
            handle.write("[")
            for start in range(0, len(value), slice_rows):
                rows = json.dumps(value[start : start + slice_rows], ensure_ascii=False)[1:-1]
                handle.write(("," if start else "") + rows)
            handle.write("]")
        else:
            handle.write(json.dumps(value, ensure_ascii=False))
    handle.write("}")


def chunk_from_json(data: dict[str, Any]) -> Chunk:
    return Chunk(
        data["path"],
        tuple(data["headings"]),
        data["start_line"],
        data["end_line"],
        data["text"],
        tuple(data.get("tags", ())),
        str(data.get("date", "")),
    )
