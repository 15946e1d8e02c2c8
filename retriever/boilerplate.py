"""Sections that recur across a folder's documents, such as a site's footer on every page or a help system's debug
box, are not answers: kept out of every ranking.

A chunk is boilerplate when its section heading and text, compared without case or spacing, recur in at least
MIN_FILES notes and in at least MIN_SHARE of the notes of its format (HTML pages among HTML pages, so a help folder
beside a few PDFs still counts its pages), and its note holds something else too: a note whose every chunk recurs
is a copy, and a copy's text is still the answer. Legitimate repetition in notes (an answer pasted into two or
three notes, a `Error codes` table shared by a family of pages) stays below these bars.

Decided when an index is first asked, from its manifest, which holds every chunk of every note: nothing an earlier
build decided is kept, so an edit of one note never leaves a stale decision and the order of builds never matters.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import PurePosixPath

import numpy as np

from .chunking import Chunk

MIN_FILES = 5
MIN_SHARE = 0.5


def recurring_key(chunk: Chunk) -> tuple[str, str]:
    """What two notes share when they repeat a section: its format, and its heading and text without case or
    spacing."""
    text = unicodedata.normalize("NFC", f"{chunk.heading}\n{chunk.text}").casefold()
    return PurePosixPath(chunk.path).suffix.lower(), " ".join(text.split())


def boilerplate_rows(chunks: Sequence[Chunk]) -> np.ndarray:
    """Rows of the chunks that are boilerplate, sorted."""
    keys = [recurring_key(chunk) for chunk in chunks]
    notes: dict[tuple[str, str], set[str]] = defaultdict(set)
    for key, chunk in zip(keys, chunks):
        notes[key].add(chunk.path)
    per_format = Counter(PurePosixPath(path).suffix.lower() for path in {chunk.path for chunk in chunks})
    recurs = [len(notes[key]) >= max(MIN_FILES, MIN_SHARE * per_format[key[0]]) for key in keys]
    kept_in = {chunk.path for chunk, repeated in zip(chunks, recurs) if not repeated}
    rows = [row for row, chunk in enumerate(chunks) if recurs[row] and chunk.path in kept_in]
    return np.asarray(rows, dtype=np.int64)
