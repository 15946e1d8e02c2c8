"""Which notes a search may answer from: path globs, tags, a date range and a collection.

They narrow the search itself, not its answer: the ranking draws its candidates from the matching chunks only
(ranking.candidates), so k results come back whenever k matching chunks exist, however far down the unfiltered
ranking they would sit. Paths are matched as .gitignore lines are (reading/globs.py): `journal/` or `journal/*` is that
folder and all below it, `*.md` any Markdown note anywhere. Several globs: a note matching any. Several tags: a note
carrying every one; a tag matches its nested tags too (`project` matches `project/retriever`), case aside.
A note's date is its front matter's `date`, else the day its file was last modified.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import RetrieverError
from ..reading.globs import gitignore_spec

if TYPE_CHECKING:
    from ..index.manifest import Manifest

FIELDS = ("path", "tag", "since", "until", "collection")  # as HTTP, MCP and the CLI name them


def parse_date(value: object, name: str) -> datetime.date:
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise RetrieverError(f"{name} must be a date as YYYY-MM-DD, not {value!r}")


def strings(value: object, name: str) -> tuple[str, ...]:
    """One string or a list of them, each with some text."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, Sequence) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise RetrieverError(f"{name} must be a non-empty string or a list of them, not {value!r}")
    return tuple(v.strip() for v in values)


def tag_key(tag: str) -> str:
    return tag.removeprefix("#").casefold()


@dataclass(frozen=True)
class Filters:
    paths: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    since: datetime.date | None = None
    until: datetime.date | None = None
    collection: str | None = None

    @classmethod
    def of(
        cls,
        path: object = None,
        tag: object = None,
        since: object = None,
        until: object = None,
        collection: object = None,
    ) -> Filters:
        """Filters from what a caller sent (the CLI, a JSON body, a tool call), each value checked for its type."""
        if collection is not None and not (isinstance(collection, str) and collection.strip()):
            raise RetrieverError(f"collection must be a collection's name, not {collection!r}")
        found = cls(
            () if path is None else strings(path, "path"),
            () if tag is None else strings(tag, "tag"),
            None if since is None else parse_date(since, "since"),
            None if until is None else parse_date(until, "until"),
            collection.strip() if isinstance(collection, str) else None,
        )
        if found.since and found.until and found.since > found.until:
            raise RetrieverError(f"since ({found.since}) is after until ({found.until}); nothing could match")
        return found

    @classmethod
    def named(cls, given: dict[str, Any]) -> Filters:
        """Filters by name, as the Python API and a tool call pass them; a name that is none is refused."""
        unknown = [name for name in given if name not in FIELDS]
        if unknown:
            raise RetrieverError(f"unknown filter {unknown[0]!r}; filters are {', '.join(FIELDS)}")
        return cls.of(**{name: value for name, value in given.items() if value is not None})

    def __bool__(self) -> bool:
        return bool(self.paths or self.tags or self.since or self.until or self.collection)

    def to_json(self) -> dict[str, Any]:
        data = {"path": list(self.paths), "tag": list(self.tags), "since": self.since, "until": self.until}
        data |= {"collection": self.collection}
        return {k: v.isoformat() if isinstance(v, datetime.date) else v for k, v in data.items() if v}

    def rows(self, notes: NoteTable) -> np.ndarray | None:
        """The chunk rows these filters let through, sorted; None when there are no filters."""
        if not self:
            return None
        keep = np.ones(len(notes.paths), dtype=bool)
        if self.collection is not None:
            keep &= notes.in_collection(self.collection)
        if self.paths:
            keep &= notes.matching(self.paths)
        for tag in self.tags:
            keep &= notes.tagged(tag)
        if self.since is not None:
            keep &= notes.dates >= np.datetime64(self.since)
        if self.until is not None:
            keep &= notes.dates <= np.datetime64(self.until)
        return np.flatnonzero(keep[notes.chunk_note])


@dataclass
class NoteTable:
    """The indexed notes with what filters ask of them, one row per note, built once per loaded index."""

    manifest: Manifest

    @cached_property
    def paths(self) -> list[str]:
        return list(dict.fromkeys(c.path for c in self.manifest.chunks))

    @cached_property
    def chunk_note(self) -> np.ndarray:
        row = {path: i for i, path in enumerate(self.paths)}
        return np.fromiter((row[c.path] for c in self.manifest.chunks), dtype=np.int64, count=len(self.manifest.chunks))

    @cached_property
    def first_chunks(self) -> list[int]:
        return [int(i) for i in np.unique(self.chunk_note, return_index=True)[1]]

    @cached_property
    def tags(self) -> list[frozenset[str]]:
        chunks = self.manifest.chunks
        return [frozenset(tag_key(t) for t in chunks[i].tags) for i in self.first_chunks]

    @cached_property
    def dates(self) -> np.ndarray:
        chunks, files = self.manifest.chunks, self.manifest.files
        days = []
        for path, i in zip(self.paths, self.first_chunks):
            stamp = files.get(path)
            modified = datetime.date.fromtimestamp(stamp.mtime_ns / 1e9) if stamp else datetime.date.min
            days.append(chunks[i].date or modified.isoformat())
        return np.array(days, dtype="datetime64[D]")

    def in_collection(self, name: str) -> np.ndarray:
        known = self.manifest.collections
        if name not in known:
            have = f"its collections are {', '.join(known)}" if known else "it holds one folder, no collections"
            raise RetrieverError(f"no collection {name!r} in the index; {have}")
        return np.array([p.startswith(name + "/") for p in self.paths], dtype=bool)

    def matching(self, globs: tuple[str, ...]) -> np.ndarray:
        keep = np.zeros(len(self.paths), dtype=bool)
        for glob in globs:
            matcher = gitignore_spec([glob], f"path {glob[:60]!r}")
            hits = np.array([matcher.match_file(p) for p in self.paths], dtype=bool)
            if not hits.any():
                raise RetrieverError(f"path {glob!r} matches no indexed note (globs are relative to the notes folder)")
            keep |= hits
        return keep

    def tagged(self, tag: str) -> np.ndarray:
        key = tag_key(tag)
        hits = np.array([key in tags or any(t.startswith(key + "/") for t in tags) for tags in self.tags], dtype=bool)
        if not hits.any():
            raise RetrieverError(f"no indexed note has the tag {tag!r}")
        return hits
