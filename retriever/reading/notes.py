"""Reading a notes folder: the only place that touches note files on disk."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RetrieverError
from ..failpoints import holdpoint
from .conversion import Unreadable
from .documents import DOCUMENT_SUFFIXES, TEXT_SUFFIXES, read_document
from .extraction_cache import ExtractionCache
from .globs import gitignore_spec
from .stamp import FileStamp

NOTE_SUFFIXES = TEXT_SUFFIXES | DOCUMENT_SUFFIXES
# A note is prose someone wrote; a multi-megabyte file is a dump or an export, and chunking and embedding it would
# cost minutes of every build. Skipped with a warning naming it; RETRIEVER_MAX_NOTE_MB raises the bound.
MAX_NOTE_BYTES = int(float(os.environ.get("RETRIEVER_MAX_NOTE_MB", "2")) * 1024 * 1024)
# A document's bytes are mostly fonts and images: its text is a small share of them, so its bound is its own.
MAX_DOCUMENT_BYTES = int(float(os.environ.get("RETRIEVER_MAX_DOCUMENT_MB", "50")) * 1024 * 1024)
# Entries (files and folders) a walk looks at before it stops: a folder of notes, attachments and all, holds far
# fewer; more is a disk or a home folder named by mistake, whose walk would run for minutes and index it all.
MAX_FILES = int(os.environ.get("RETRIEVER_MAX_FILES", "1000000"))


@dataclass(frozen=True)
class Note:
    path: str  # relative to the notes folder, POSIX separators, so an index moves with its folder
    text: str  # NFC, BOM stripped, line endings as "\n"


@dataclass
class NoteScan:
    notes: list[Note] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) for warnings
    stamps: dict[str, FileStamp] = field(default_factory=dict)  # every file listed, skipped ones too
    collections: list[str] = field(default_factory=list)  # the library's collection names, in order
    extracted: int = 0  # documents whose parser ran: new or changed since the extraction cache kept their text


def normalise(text: str) -> str:
    """NFC so that composed and decomposed Hangul are the same text, for hashing and for the model."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class Listed:
    """A note file the walk found, with the stat it was found by: reused so a file is stat'ed once per walk."""

    path: str  # where to read it: the entry itself, or a link that stays inside the folder
    info: os.stat_result


@dataclass
class Listing:
    files: dict[str, Listed] = field(default_factory=dict)  # by path relative to the folder, in walk order
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): odd entries, never read
    seen: int = 0  # entries looked at so far, notes or not: what progress tells while a large folder is walked


def within(path: str, base: str) -> bool:
    """Whether path is base or below it; both real (link-free) paths."""
    return os.path.join(path, "").startswith(os.path.join(base, ""))


def printable(rel: str) -> str:
    """A path whose name is not UTF-8 (kept by Python as surrogates), shown as backslash escapes."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def is_folder(entry: os.DirEntry[str]) -> bool:
    """Whether entry is a folder or a link to one; a link that cannot be followed is no folder (and, not named
    like a note, is passed over)."""
    try:
        return entry.is_dir()
    except OSError:  # is_dir() swallows only a missing target, not a loop or a refused stat
        return False


def examine(entry: os.DirEntry[str], folder: str, base: str) -> os.stat_result | str:
    """The stat of what entry is (a link followed), or why it is skipped. Links to folders are never followed:
    every folder inside base is walked where it really is, so following one would read its notes twice under
    two names, or forever when the link leads back to a folder it is in."""
    try:
        info = entry.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR) and entry.is_symlink():
            return "broken link"
        return f"unreadable ({exc.strerror})"
    if entry.is_symlink():
        real = os.path.realpath(entry.path)
        if not within(real, base):
            return "link leads outside the notes folder"
        if stat.S_ISDIR(info.st_mode):
            if within(folder, real):
                return "symlink loop (a link to a folder it is in)"
            return "link to a folder inside the notes folder (not followed: its notes are read where they are)"
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        return "not a regular file"
    return info


def list_notes(notes: Library | Path, listing: Listing | None = None) -> Listing:
    """Every note file in the library's folders and every odd entry skipped, sorted: the one walk that both a scan
    and the staleness check use, so what an index records and what it is compared with can never disagree.
    listing: the one to fill, so that a reporter can count it as it grows."""
    library = Library.of(notes)
    library.require()
    listing = Listing() if listing is None else listing
    for folder in library.folders:
        walk(folder, listing)
    return listing


def walk(folder: Folder, listing: Listing) -> None:
    """One folder's notes into listing, under the folder's prefix. Iterative (os.walk recurses, and a deep tree
    would overflow the stack), a folder's files before its subfolders'. Hidden entries, files without a note suffix
    and what the exclude globs or a .gitignore on the way match are passed over silently (an excluded folder is not
    entered, as git does); anything else that is not a regular file or a real folder is skipped with its reason,
    never opened."""
    base = os.path.realpath(folder.root)
    top = Ignored.of(folder.exclude)
    stack = [(base, "", top)]
    while stack:
        where, rel_folder, ignored = stack.pop()
        prefix = folder.prefix + rel_folder
        try:
            with os.scandir(where) as entries:
                ordered = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            listing.skipped.append((prefix.removesuffix("/") or ".", f"unreadable ({exc.strerror})"))
            continue
        listing.seen += len(ordered)
        if listing.seen > MAX_FILES:
            raise RetrieverError(
                f"{folder.root} holds over {MAX_FILES:,} files and folders: is it the folder of your notes? "
                "(RETRIEVER_MAX_FILES raises the bound)"
            )
        holdpoint("walk")
        ignored = ignored.reading(ordered, rel_folder)
        subfolders: list[tuple[str, str, Ignored]] = []
        for entry in ordered:
            name = entry.name
            if name.startswith(".") or not (os.path.splitext(name)[1].lower() in NOTE_SUFFIXES or is_folder(entry)):
                continue
            rel = prefix + name
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                listing.skipped.append((printable(rel), "name is not valid UTF-8"))
                continue
            found = examine(entry, where, base)
            if isinstance(found, str):
                listing.skipped.append((rel, found))
            elif stat.S_ISDIR(found.st_mode):
                if not ignored.matches(rel_folder + name + "/"):
                    subfolders.append((entry.path, rel_folder + name + "/", ignored))
            elif not ignored.matches(rel_folder + name):
                listing.files[rel] = Listed(entry.path, found)
        stack.extend(reversed(subfolders))


def decode_note(data: bytes) -> str | None:
    """None for files that are not UTF-8 text, which are skipped rather than indexed as garbage."""
    if b"\x00" in data:
        return None
    try:
        return normalise(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None


def note_text(rel: str, data: bytes, extracted: ExtractionCache | None = None, digest: str | None = None) -> str:
    """A note's text as the index reads it: a document's extracted text (kept in extracted, by digest: the SHA-256
    of data), any other note's UTF-8; Unreadable says why not."""
    suffix = os.path.splitext(rel)[1].lower()
    if suffix in DOCUMENT_SUFFIXES:
        source = digest or hashlib.sha256(data).hexdigest()
        text = (extracted or ExtractionCache(None)).text(source, lambda: normalise(read_document(suffix, data)))
        if len(text.encode("utf-8")) > MAX_NOTE_BYTES:  # its text is bounded as a note's is
            raise Unreadable(f"larger than {MAX_NOTE_BYTES / 2**20:g} MB of text (RETRIEVER_MAX_NOTE_MB raises it)")
        return text
    text = decode_note(data)
    if text is None:
        raise Unreadable("not UTF-8 text")
    return text


def require_folder(root: Path) -> None:
    """A folder, and not one that holds a whole disk or every file of its user: such a walk would run for minutes
    and index whatever it met."""
    if not root.is_dir():
        raise RetrieverError(f"notes folder not found: {root} (pass --notes DIR or set RETRIEVER_NOTES)")
    real = root.resolve()
    if real == Path(real.anchor) or real == Path.home().resolve():
        where = "the root of the file system" if real == Path(real.anchor) else "your home folder"
        raise RetrieverError(f"notes folder {root} is {where}; name the folder your notes are in")


# A .gitignore is a few lines. A larger one is refused whole: cut short, its last line would be half a glob (a
# line cut to `*` excludes every note), and which notes it was meant to leave out nobody could tell.
MAX_IGNORE_BYTES = 1 << 20


@dataclass(frozen=True)
class Ignored:
    """The exclude globs and .gitignore files that apply in a folder: each spec with the folder (relative to the
    notes folder) its patterns are relative to. pathspec is imported only where there are patterns at all."""

    specs: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, patterns: Sequence[str]) -> Ignored:
        return cls((("", gitignore_spec(patterns, "exclude")),)) if patterns else cls()

    def reading(self, entries: list[os.DirEntry[str]], rel_folder: str) -> Ignored:
        """These specs and the folder's own .gitignore, if it has one."""
        found = next((e for e in entries if e.name == ".gitignore"), None)
        if found is None:
            return self
        try:
            with open(found.path, "rb") as handle:
                data = handle.read(MAX_IGNORE_BYTES + 1)
        except OSError:
            return self
        where = printable(found.path)
        if len(data) > MAX_IGNORE_BYTES:
            raise RetrieverError(f"{where} is over {MAX_IGNORE_BYTES >> 20} MiB; a .gitignore is a few lines of globs")
        lines = data.decode("utf-8", "replace").splitlines()
        return Ignored((*self.specs, (rel_folder, gitignore_spec(lines, where))))

    def matches(self, rel: str) -> bool:
        """Whether rel (relative to the notes folder; a folder ends in /) is excluded."""
        return any(rel.startswith(base) and spec.match_file(rel[len(base) :]) for base, spec in self.specs)


@dataclass(frozen=True)
class Folder:
    """A folder of notes and what to leave out of it. A named one is a collection: its notes' paths start with its
    name, so one index holds several folders and a path says which."""

    root: Path
    name: str = ""
    exclude: tuple[str, ...] = ()  # .gitignore-style globs, besides the folder's own .gitignore files

    @property
    def prefix(self) -> str:
        return f"{self.name}/" if self.name else ""


@dataclass(frozen=True)
class Library:
    """The folders one index holds: one unnamed folder, or named collections (retriever.toml)."""

    folders: tuple[Folder, ...]

    @classmethod
    def of(cls, notes: Library | str | os.PathLike[str]) -> Library:
        return notes if isinstance(notes, Library) else cls((Folder(Path(notes)),))

    @property
    def lone_folder(self) -> Path | None:
        """The folder, when there is one unnamed: what `--notes` names in the commands messages suggest."""
        return self.folders[0].root if len(self.folders) == 1 and not self.folders[0].name else None

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.folders if f.name]

    def __str__(self) -> str:
        if len(self.folders) == 1 and not self.folders[0].name:
            return str(self.folders[0].root)
        return ", ".join(f"{f.name}={f.root}" for f in self.folders)

    def identity(self) -> str:
        """What a server records as what it serves, so a client asks only a server of the same folders."""
        return ", ".join(f.prefix + str(f.root.resolve()) for f in self.folders)

    def exists(self) -> bool:
        return all(f.root.exists() for f in self.folders)

    def require(self) -> None:
        for folder in self.folders:
            require_folder(folder.root)

    def locate(self, rel: str) -> tuple[Path, str]:
        """The folder a note's path lies in and its path there."""
        for folder in self.folders:
            if rel.startswith(folder.prefix):
                return folder.root, rel.removeprefix(folder.prefix)
        raise RetrieverError(f"no note {rel!r} in {self}")


def size_bound(name: str) -> tuple[int, str]:
    """The most bytes a note of this name is read to, and the variable that raises it."""
    if os.path.splitext(name)[1].lower() in DOCUMENT_SUFFIXES:
        return MAX_DOCUMENT_BYTES, "RETRIEVER_MAX_DOCUMENT_MB"
    return MAX_NOTE_BYTES, "RETRIEVER_MAX_NOTE_MB"


def contents(listed: Listed) -> bytes | str:
    """A listed file's bytes, or why it is not read: too large to be a note, or refused."""
    bound, variable = size_bound(listed.path)
    if listed.info.st_size > bound:
        return f"larger than {bound / 2**20:g} MB ({variable} raises it)"
    try:
        return Path(listed.path).read_bytes()
    except OSError as exc:
        return f"unreadable ({exc.strerror})"


def scan_notes(
    notes: Library | Path, listing: Listing | None = None, extracted: ExtractionCache | None = None
) -> NoteScan:
    """The library's notes, read and stamped, and every entry left out with the reason a warning gives. Documents
    whose text extracted keeps are not parsed; none is kept when it is not given."""
    extracted = extracted or ExtractionCache(None)
    parsed = extracted.parsed
    library = Library.of(notes)
    listing = list_notes(library, listing)
    scan = NoteScan(skipped=list(listing.skipped), collections=library.names)
    for rel, listed in listing.files.items():
        # The stat from before the read: a file written meanwhile no longer matches its stamp, so it is read again.
        size, mtime_ns = listed.info.st_size, listed.info.st_mtime_ns
        data = contents(listed)
        if isinstance(data, str):
            # Stamped unread all the same, so that notes_changed, which lists it too, finds it known.
            scan.stamps[rel] = FileStamp("", size, mtime_ns)
            scan.skipped.append((rel, data))
            continue
        digest = hashlib.sha256(data).hexdigest()
        scan.stamps[rel] = FileStamp(digest, size, mtime_ns)
        try:
            text = note_text(rel, data, extracted, digest)
        except Unreadable as exc:
            scan.skipped.append((rel, str(exc)))
            continue
        scan.notes.append(Note(rel, text))
    scan.extracted = extracted.parsed - parsed
    return scan


def read_note(notes: Library | Path, name: str, extracted: ExtractionCache | None = None) -> str:
    """One note's text by its path in the library; a path leading outside its folder, or to anything but a regular
    file (reading a named pipe would wait forever), is refused. A document's text comes from extracted when it
    keeps the text of these very bytes."""
    root, rel = Library.of(notes).locate(name)
    base = os.path.realpath(root)
    path = os.path.realpath(os.path.join(base, rel))
    if not within(path, base) or not os.path.isfile(path):
        raise RetrieverError(f"no note {name!r} in {root}")
    bound, variable = size_bound(rel)
    try:
        with open(path, "rb") as handle:  # bounded as the index bounds notes: no more than it would have read
            data = handle.read(bound + 1)
    except OSError as exc:
        raise RetrieverError(f"note {name!r} is unreadable ({exc.strerror})") from None
    if len(data) > bound:
        raise RetrieverError(f"note {name!r} is larger than {bound / 2**20:g} MB and not served ({variable} raises it)")
    try:
        return note_text(rel, data, extracted)
    except Unreadable as exc:
        raise RetrieverError(f"note {name!r} is {exc}") from None


def notes_changed(notes: Library | Path, known: dict[str, FileStamp]) -> bool:
    """Whether the folders differ from what an index saw; reads only files whose size or mtime moved."""
    listing = list_notes(notes)
    if listing.files.keys() != known.keys():
        return True
    for rel, listed in listing.files.items():
        old = known[rel]
        if (listed.info.st_size, listed.info.st_mtime_ns) == (old.size, old.mtime_ns):
            continue
        try:
            if hashlib.sha256(Path(listed.path).read_bytes()).hexdigest() != old.sha256:
                return True
        except OSError:
            return True
    return False
