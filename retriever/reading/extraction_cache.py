"""Documents' extracted text kept under the index folder, so a build parses only documents new or changed since.

Parsing is the slow part of reading a PDF, HTML, DOCX or HWP note (a PDF page costs ~7 ms of CPU), and a
folder of manuals was parsed whole on every build although their bytes had not moved. So the text a parser gave
is kept in `<index>/extracted/<sha256>.md`, named by the SHA-256 of the document's bytes (what the scan computes
for every file anyway): content-addressed, so a renamed or copied document is not parsed again either.

Each entry is one line of JSON and then the text (UTF-8, NFC, as the index reads it). The line names the extractor
it came from (EXTRACTOR_VERSION and the versions of the parser libraries), the bytes it was read from, and the
SHA-256 and length of the text. An entry from another extractor, or one cut short or altered, is never served: the
document is parsed again and the entry rewritten. Entries are written to a temp name and renamed, without fsync:
one a crash leaves empty fails its own check and is parsed again. Only builds write entries (with the build lock
held); a read such as `get` reads them and never writes. A build that committed removes every entry, and every temp
file, not named by a file in the folders it indexed: the folder holds one entry per document at most.

Only text is kept: a document that cannot be read is tried again on the next build, since why it failed (a parser
not installed, say) may be about this machine rather than its bytes. Nothing is loaded with pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

FOLDER = "extracted"
FORMAT = 1
# Bump whenever documents.py (or pdf.py, hwp.py) writes other text for the same bytes (a new reader, a changed rule): entries of the
# old extractor are then parsed again instead of served.
EXTRACTOR_VERSION = 1
# The libraries documents.py reads with: another version of any of them may read the same bytes otherwise.
PARSERS = ("pypdfium2", "selectolax", "python-docx", "dochan")
SUFFIX = ".md"


def extractor() -> dict[str, Any]:
    """What the text of an entry depends on besides the bytes it was read from."""
    return {"version": EXTRACTOR_VERSION, "parsers": parser_versions()}


@cache
def parser_versions() -> dict[str, str | None]:
    """Asked of the installed packages' metadata, once per process: none is imported. importlib.metadata is
    imported here, not with the module: ~70 ms that a command answered by a running server does not need."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in PARSERS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def entry_bytes(source: str, text: str) -> bytes:
    body = text.encode("utf-8")
    header = {
        "format": FORMAT,
        "extractor": extractor(),
        "source": source,
        "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    return json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n" + body


def entry_text(source: str, data: bytes) -> str | None:
    """The text of an entry for these source bytes from this extractor, or None when it is not one, whole."""
    line, newline, body = data.partition(b"\n")
    try:
        header = json.loads(line)
        whole = (
            newline
            and header["format"] == FORMAT
            and header["extractor"] == extractor()
            and header["source"] == source
            and header["bytes"] == len(body)
            and header["sha256"] == hashlib.sha256(body).hexdigest()
        )
        return body.decode("utf-8") if whole else None
    except (ValueError, TypeError, KeyError):  # ValueError: bad JSON or bad UTF-8
        return None


@dataclass
class ExtractionCache:
    """The extracted text of an index's documents. folder None: nothing is kept (a scan with no index)."""

    folder: Path | None
    writes: bool = True  # False for a read, which never writes the index folder
    parsed: int = 0  # documents whose parser ran: not kept here, or kept damaged or by another extractor

    @classmethod
    def of(cls, index: Path, writes: bool = True) -> ExtractionCache:
        return cls(index / FOLDER, writes)

    def text(self, source: str, extract: Callable[[], str]) -> str:
        """The text of the document whose bytes hash to source: kept, else extracted (and kept, in a build)."""
        kept = self.read(source)
        if kept is not None:
            return kept
        self.parsed += 1
        text = extract()
        if self.writes:
            self.write(source, text)
        return text

    def read(self, source: str) -> str | None:
        if self.folder is None:
            return None
        try:
            data = (self.folder / f"{source}{SUFFIX}").read_bytes()
        except OSError:
            return None
        return entry_text(source, data)

    def write(self, source: str, text: str) -> None:
        """Keep text for source; a folder that cannot be written costs the next build a parse, never this one."""
        if self.folder is None:
            return
        pending = self.folder / f".{source}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            pending.write_bytes(entry_bytes(source, text))
            os.replace(pending, self.folder / f"{source}{SUFFIX}")
        except OSError:
            pending.unlink(missing_ok=True)

    def prune(self, sources: Iterable[str]) -> None:
        """Remove every entry but those of these sources, and temp files of interrupted builds. Only with the build
        lock held, after a commit: sources are the hashes of the files it indexed."""
        if self.folder is None or not self.folder.is_dir():
            return
        keep = {f"{source}{SUFFIX}" for source in sources}
        for path in self.folder.iterdir():
            if path.name not in keep:
                try:
                    path.unlink(missing_ok=True)
                except OSError:  # not ours to remove (a folder someone put here), or already refused: left as is
                    continue
