"""Per-chunk metadata of a local index in columns: integer `.npy` tables, the chunks' text as one UTF-8 array, and
the few distinct strings (paths, heading paths, tags, dates) in the manifest's header, each stored once.

A load reads the integer tables and maps the text; a `Chunk` is made when a question (or a build) first asks for
its row, and kept. The JSON manifest this replaces held every chunk as an object with its keys, heading path and
hash spelt out, and every load parsed all of it: 1.9 MB on a 644 KB docs folder, 3× its text (README, "Index
size").
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np

from ..reading.chunk import Chunk, Part
from .integrity import save_array

TABLES = ("meta.chunks", "meta.questions")  # [rows, len(COLUMNS)] int64, each with `<name>.text` (its text, UTF-8)
PARTS = "meta.parts"  # [parts, 3] int32: chunk row, first and end character of the chunk's text
COLUMNS = ("text_start", "text_end", "path", "headings", "tags", "date", "start_line", "end_line", "question")
TEXT = ".text"
T = TypeVar("T")


def files() -> list[str]:
    """Every file the tables are stored in, relative to the generation."""
    return [f"{name}{suffix}.npy" for name in TABLES for suffix in ("", TEXT)] + [f"{PARTS}.npy"]


@dataclass(frozen=True)
class Strings:
    """The distinct strings rows point into by number."""

    paths: list[str]
    headings: list[tuple[str, ...]]
    tags: list[tuple[str, ...]]
    dates: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"paths": self.paths, "headings": self.headings, "tags": self.tags, "dates": self.dates}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Strings:
        return cls(
            [str(p) for p in data["paths"]],
            [tuple(str(h) for h in each) for each in data["headings"]],
            [tuple(str(t) for t in each) for each in data["tags"]],
            [str(d) for d in data["dates"]],
        )

    def bounds(self) -> dict[str, int]:
        """Column → how many strings it may point to."""
        return {
            "path": len(self.paths),
            "headings": len(self.headings),
            "tags": len(self.tags),
            "date": len(self.dates),
        }


class Numbering:
    """Gives each distinct value a number, in order of first sight."""

    def __init__(self) -> None:
        self.numbers: dict[Any, int] = {}

    def __call__(self, value: Any) -> int:
        return self.numbers.setdefault(value, len(self.numbers))

    def values(self) -> list[Any]:
        return list(self.numbers)


def write_tables(
    folder: Path,
    chunks: Sequence[Chunk],
    questions: Sequence[Chunk],
    chunk_question: Sequence[int],
    parts: Sequence[Part],
) -> Strings:
    """The tables of these rows into folder; returns the strings they number, for the manifest's header."""
    paths, headings, tags, dates = Numbering(), Numbering(), Numbering(), Numbering()
    for name, rows, question_of in ((TABLES[0], chunks, chunk_question), (TABLES[1], questions, None)):
        table = np.zeros((len(rows), len(COLUMNS)), dtype=np.int64)
        texts = [chunk.text.encode("utf-8") for chunk in rows]
        ends = np.cumsum([len(t) for t in texts], dtype=np.int64)
        table[:, 0], table[:, 1] = ends - [len(t) for t in texts], ends
        for row, chunk in enumerate(rows):
            table[row, 2:8] = (
                paths(chunk.path),
                headings(chunk.headings),
                tags(chunk.tags),
                dates(chunk.date),
                chunk.start_line,
                chunk.end_line,
            )
        table[:, 8] = np.asarray(question_of, dtype=np.int64) if question_of is not None else -1
        save_array(folder / f"{name}.npy", table, durable=False)
        save_array(folder / f"{name}{TEXT}.npy", np.frombuffer(b"".join(texts), dtype=np.uint8), durable=False)
    spans = np.array([(p.chunk, p.start, p.end) for p in parts], dtype=np.int32).reshape(-1, 3)
    save_array(folder / f"{PARTS}.npy", spans, durable=False)
    return Strings(paths.values(), headings.values(), tags.values(), dates.values())


class RowTable(Sequence[T]):
    """Items made from the rows of an integer table when indexed, as a list would hand them out."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row = operator.index(index)
        return self.item(row + len(self) if row < 0 else row)  # IndexError past the end, as a list's

    def __iter__(self) -> Iterator[T]:
        return (self[row] for row in range(len(self)))

    def item(self, row: int) -> T:
        raise NotImplementedError


class ChunkTable(RowTable[Chunk]):
    """Chunks as rows of a table: each made on first access and kept, so a question makes only those it shows."""

    def __init__(self, rows: np.ndarray, text: np.ndarray, strings: Strings) -> None:
        super().__init__(rows)
        self.text, self.strings = text, strings
        self.made: list[Chunk | None] = [None] * len(rows)

    def item(self, row: int) -> Chunk:
        made = self.made[row]
        if made is None:
            made = self.made[row] = self.make(row)
        return made

    def make(self, row: int) -> Chunk:
        start, end, path, headings, tags, date, first, last, _ = self.rows[row].tolist()
        strings = self.strings
        text = self.text[start:end].tobytes().decode("utf-8")
        return Chunk(
            strings.paths[path], strings.headings[headings], first, last, text, strings.tags[tags], strings.dates[date]
        )


class PartTable(RowTable[Part]):
    """Parts as rows of a table; their owners are a column, which ranking and checks read whole."""

    @property
    def owners(self) -> np.ndarray:
        return self.rows[:, 0].astype(np.int64)

    def item(self, row: int) -> Part:
        chunk, start, end = self.rows[row].tolist()
        return Part(chunk, start, end)


@dataclass(frozen=True)
class Tables:
    """A manifest's rows: tables read from a local index, or lists (a build's, or read from JSON)."""

    chunks: Sequence[Chunk]
    questions: Sequence[Chunk]
    chunk_question: Sequence[int]
    parts: Sequence[Part]


def read_tables(folder: Path, strings: Strings) -> Tables:
    """The tables of a generation, checked against each other and the strings: a row that passes can never send a
    question outside them. ValueError otherwise."""
    tables = []
    for name in TABLES:
        rows = np.load(folder / f"{name}.npy", allow_pickle=False)
        text = np.load(folder / f"{name}{TEXT}.npy", allow_pickle=False, mmap_mode="r")
        if rows.dtype != np.int64 or rows.ndim != 2 or rows.shape[1] != len(COLUMNS):
            raise ValueError(f"{name} is not a table of {len(COLUMNS)} integer columns")
        if text.dtype != np.uint8 or text.ndim != 1:
            raise ValueError(f"{name}{TEXT} is not UTF-8 bytes")
        start, end = rows[:, 0], rows[:, 1]
        if len(rows) and ((start < 0) | (start > end) | (end > len(text))).any():
            raise ValueError(f"{name} points outside its text")
        for column, bound in strings.bounds().items():
            ids = rows[:, COLUMNS.index(column)]
            if len(ids) and (ids.min() < 0 or ids.max() >= bound):
                raise ValueError(f"{name} names a {column} the manifest does not hold")
        tables.append(ChunkTable(rows, np.asarray(text), strings))
    parts = np.load(folder / f"{PARTS}.npy", allow_pickle=False)
    if parts.dtype != np.int32 or parts.ndim != 2 or parts.shape[1] != 3:
        raise ValueError(f"{PARTS} is not a table of 3 integer columns")
    chunks, questions = tables
    return Tables(chunks, questions, chunks.rows[:, COLUMNS.index("question")], PartTable(parts))
