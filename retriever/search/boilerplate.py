"""Sections that recur across a folder's documents, such as a site's footer on every page or a help system's debug
box, are not answers: kept out of every ranking.

A chunk is boilerplate when its section heading and text recur in at least
MIN_FILES notes and in at least MIN_SHARE of the notes of its format (HTML pages among HTML pages, so a help folder
beside a few PDFs still counts its pages), and its note holds something else too: a note whose every chunk recurs
is a copy, and a copy's text is still the answer. Legitimate repetition in notes (an answer pasted into two or
three notes, a `Error codes` table shared by a family of pages) stays below these bars.

Decided when an index is first asked, from its manifest, which holds every chunk of every note: nothing an earlier
build decided is kept, so an edit of one note never leaves a stale decision and the order of builds never matters.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from ..reading.chunk import Chunk

MIN_FILES = 5
MIN_SHARE = 0.5


def recurring_key(chunk: Chunk, suffix: str | None = None) -> tuple[str, str, str]:
    """What two notes share when they repeat a section: its format, heading and text. Compared as they are (note
    text is NFC, and HTML's spacing is collapsed when it is read): hashing strings that Python already holds keeps
    this at a fraction of a second for 200 000 chunks, where normalising each took seconds."""
    return suffix if suffix is not None else format_of(chunk.path), chunk.heading, chunk.text


def format_of(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def boilerplate_rows(chunks: Sequence[Chunk]) -> np.ndarray:
    """Rows of the chunks that are boilerplate, sorted."""
    formats = {path: format_of(path) for path in {chunk.path for chunk in chunks}}
    keys = [recurring_key(chunk, formats[chunk.path]) for chunk in chunks]
    per_format = Counter(formats.values())
    # A key needs as many chunks as notes: counting chunks first leaves few keys whose notes are worth gathering.
    often = {key for key, count in Counter(keys).items() if count >= MIN_FILES}
    notes: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for row in (row for row, key in enumerate(keys) if key in often):
        notes[keys[row]].add(chunks[row].path)
    recurring = {key for key, paths in notes.items() if len(paths) >= max(MIN_FILES, MIN_SHARE * per_format[key[0]])}
    if not recurring:
        return np.zeros(0, dtype=np.int64)
    hidden = [row for row, key in enumerate(keys) if key in recurring]
    kept_in = {chunk.path for chunk, key in zip(chunks, keys) if key not in recurring}
    return np.asarray([row for row in hidden if chunks[row].path in kept_in], dtype=np.int64)
