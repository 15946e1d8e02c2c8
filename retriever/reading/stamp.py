"""What an index keeps of each note file to tell cheaply whether it changed: the walk (`notes.py`) stamps the files
it lists, the index format stores the stamps, and neither needs the other's code to hold one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileStamp:
    """Enough to tell cheaply whether a note changed since the index saw it."""

    sha256: str
    size: int
    mtime_ns: int
