"""Reading a notes folder: the only place that touches note files on disk."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RetrieverError

NOTE_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
# A note is prose someone wrote; a multi-megabyte file is a dump or an export, and chunking and embedding it would
# cost minutes of every build. Skipped with a warning naming it; RETRIEVER_MAX_NOTE_MB raises the bound.
MAX_NOTE_BYTES = int(float(os.environ.get("RETRIEVER_MAX_NOTE_MB", "2")) * 1024 * 1024)


@dataclass(frozen=True)
class FileStamp:
    """Enough to tell cheaply whether a note changed since the index saw it."""

    sha256: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Note:
    path: str  # relative to the notes folder, POSIX separators, so an index moves with its folder
    text: str  # NFC, BOM stripped, line endings as "\n"


@dataclass
class NoteScan:
    notes: list[Note] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) for warnings
    stamps: dict[str, FileStamp] = field(default_factory=dict)  # every file read, skipped ones too


def normalise(text: str) -> str:
    """NFC so that composed and decomposed Hangul are the same text, for hashing and for the model."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def note_paths(root: Path) -> list[Path]:
    """Note files below root, sorted, skipping hidden entries and anything a link leads outside of root."""
    root = root.resolve()
    found: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder, name)
            if name.startswith(".") or path.suffix.lower() not in NOTE_SUFFIXES:
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                continue
            found.append(path)
    return found


def stamp_of(path: Path, data: bytes) -> FileStamp:
    info = path.stat()
    return FileStamp(hashlib.sha256(data).hexdigest(), info.st_size, info.st_mtime_ns)


def decode_note(data: bytes) -> str | None:
    """None for files that are not UTF-8 text, which are skipped rather than indexed as garbage."""
    if b"\x00" in data:
        return None
    try:
        return normalise(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None


def require_folder(root: Path) -> None:
    if not root.is_dir():
        raise RetrieverError(f"notes folder not found: {root} (pass --notes DIR or set RETRIEVER_NOTES)")


def scan_notes(root: Path) -> NoteScan:
    require_folder(root)
    scan = NoteScan()
    base = root.resolve()
    for path in note_paths(base):
        rel = path.relative_to(base).as_posix()
        try:
            info = path.stat()
            if info.st_size > MAX_NOTE_BYTES:
                scan.stamps[rel] = FileStamp("", info.st_size, info.st_mtime_ns)  # never read, so no hash
                scan.skipped.append(
                    (rel, f"larger than {MAX_NOTE_BYTES / 2**20:g} MB (RETRIEVER_MAX_NOTE_MB raises it)")
                )
                continue
            data = path.read_bytes()
        except OSError as exc:
            scan.skipped.append((rel, f"unreadable ({exc.strerror})"))
            continue
        scan.stamps[rel] = stamp_of(path, data)
        text = decode_note(data)
        if text is None:
            scan.skipped.append((rel, "not UTF-8 text"))
            continue
        scan.notes.append(Note(rel, text))
    return scan


def read_note(root: Path, rel: str) -> str:
    """One note's text by its path relative to root; a path that leads outside root is refused."""
    base = root.resolve()
    path = (base / rel).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise RetrieverError(f"no note {rel!r} in {root}")
    text = decode_note(path.read_bytes())
    if text is None:
        raise RetrieverError(f"note {rel!r} is not UTF-8 text")
    return text


def notes_changed(root: Path, known: dict[str, FileStamp]) -> bool:
    """Whether the folder differs from what an index saw; reads only files whose size or mtime moved."""
    require_folder(root)
    base = root.resolve()
    paths = note_paths(base)
    if {p.relative_to(base).as_posix() for p in paths} != set(known):
        return True
    for path in paths:
        old = known[path.relative_to(base).as_posix()]
        info = path.stat()
        if (info.st_size, info.st_mtime_ns) == (old.size, old.mtime_ns):
            continue
        try:
            if hashlib.sha256(path.read_bytes()).hexdigest() != old.sha256:
                return True
        except OSError:
            return True
    return False
