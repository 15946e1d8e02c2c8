"""What every document reader shares as it writes Markdown: body lines escaped so that only the document's own
headings head sections, headings, blank runs tidied; why a file cannot be read; a parser imported only when one is
needed; and the bound on what a zip may inflate to."""

from __future__ import annotations

import io
import re
import zipfile
from importlib import import_module
from types import ModuleType

INSTALL_HINT = "pip install 'retriever[documents]'"
# What Markdown would read as structure at the start of a line of body text: a heading, a setext underline, a fence.
MARKDOWN_SYNTAX = re.compile(r"^[ \t]*(?:#|```|~~~|=+[ \t]*$|-+[ \t]*$)")
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # a compound file: what Office writes for an encrypted document, or an old .doc


class Unreadable(Exception):
    """Why a note is skipped, phrased to follow "is": `note 'a.pdf' is an encrypted PDF …`."""


def escaped(line: str) -> str:
    return "\\" + line if MARKDOWN_SYNTAX.match(line) else line


def heading(level: int, title: str) -> list[str]:
    return ["", "#" * min(max(level, 1), 6) + " " + title, ""]


def collapsed(text: str) -> str:
    return " ".join(text.split())


def parser(module: str, package: str) -> ModuleType:
    try:
        return import_module(module)
    except ImportError:
        raise Unreadable(f"not read: reading it needs {package} ({INSTALL_HINT})") from None


def tidy(lines: list[str]) -> str:
    """No run of blank lines longer than one, none at either end."""
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return text.strip("\n") + "\n"


# A DOCX is a zip of XML, which deflates some 5 to 20 times; a zip bomb, 1 MB inflating to 1 GiB, cost 87 s and
# 2 GB of memory before it failed. Its members' sizes are checked before any is inflated, and zipfile inflates a
# member no further than its declared size (a member that says less than it holds fails its CRC), so what is
# declared bounds what is inflated.
MAX_INFLATED_BYTES = 256 << 20
MAX_INFLATION = 100  # inflated size / compressed size, for members over a megabyte


def check_inflation(data: bytes, kind: str = "DOCX") -> None:
    """Refuse a zip whose members would inflate past the bounds, from their declared sizes alone."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
    for member in members:
        if member.file_size > max(member.compress_size * MAX_INFLATION, 1 << 20):
            ratio = member.file_size / max(member.compress_size, 1)
            raise Unreadable(f"a zip bomb: its {member.filename} inflates {ratio:.0f} times (over {MAX_INFLATION})")
    total = sum(member.file_size for member in members)
    if total > MAX_INFLATED_BYTES:
        raise Unreadable(f"a {kind} that inflates to {total / 2**20:.0f} MiB (over {MAX_INFLATED_BYTES >> 20} MiB)")
