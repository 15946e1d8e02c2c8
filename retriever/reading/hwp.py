"""Hangul (HWP v5) and HWPX documents → Markdown, as DOCX is read: outline headings as `#`, tables as rows of
cells between ` | `, each footnote as a `[^N]: …` line right after the paragraph that cites it (so the note stays
in the cited passage's section), running headers, footers, pictures and memos left out.

dochan parses both formats (chosen by bench/hwp_readers.py: every sample read, headings, tables, footnotes and
encryption told apart, MIT, no dependencies). It bounds what it inflates itself: an HWP's zlib streams stop at
200 MB per document; an HWPX is a zip, checked with check_inflation before dochan opens it. It reads a path, so
the bytes go to a private temporary file first. It never raises on a damaged file but lists `ERR: …` lines: a file
that gives no text is unreadable for the first of them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .conversion import OLE_MAGIC, Unreadable, check_inflation, collapsed, escaped, heading, parser, tidy

ZIP_MAGIC = b"PK\x03\x04"
ENCRYPTED = ("암호화", "DRM")  # how dochan's errors name a password or DRM protection


def paragraph_text(paragraph: Any) -> str:
    """The runs with each note reference written `[^N]`, as the note's own line names it."""
    return collapsed("".join(f"[^{run.note_ref}]" if run.note_ref else run.text for run in paragraph.runs))


def caption(block: Any) -> list[str]:
    text = collapsed(block.caption_text)
    return [escaped(text)] if text else []


def block_lines(block: Any) -> list[str]:
    """One element of a section: a paragraph, a table, a picture's caption or a footnote (endnotes too); running
    headers and footers, memos and the rest are left out."""
    kind = type(block).__name__
    if kind == "Paragraph":
        text = paragraph_text(block)
        if not text:
            return []
        return heading(block.heading_level, text) if block.heading_level else [escaped(text)]
    if kind == "Table":
        # A cell's text holds its nested tables and notes (dochan flattens them), on one line here.
        rows = [" | ".join(t for c in row if not c.is_merged_away and (t := collapsed(c.text))) for row in block.rows]
        return ["", *(escaped(row) for row in rows if row), *caption(block), ""]
    if kind == "Image":  # its caption; its alt text is the file's name and size, nothing a person wrote
        return caption(block)
    if kind == "Footnote" and block.type in ("footnote", "endnote"):
        text = collapsed(block.text)
        return [f"[^{block.number}]: {text}"] if text else []
    return []


def parsed(data: bytes, suffix: str) -> Any:
    """dochan's model of the document, read from a temporary copy of the bytes."""
    dochan = parser("dochan", "dochan")
    with tempfile.TemporaryDirectory(prefix="retriever-hwp-") as folder:
        path = Path(folder) / f"document{suffix}"
        path.write_bytes(data)
        return dochan.Dochan(str(path), include_assets=suffix != ".hwpx").doc


def read_hangul(data: bytes, suffix: str, kind: str) -> str:
    document = parsed(data, suffix)
    errors = [error.removeprefix("ERR:").strip() for error in document.errors if error.startswith("ERR")]
    if any(word in error for error in errors for word in ENCRYPTED):
        raise Unreadable(f"an encrypted or DRM-protected {kind} (it needs a password)")
    lines = [line for section in document.sections for block in section.elements for line in block_lines(block)]
    if errors and not any(line.strip() for line in lines):  # what a damaged file still gives is read
        raise Unreadable(f"a damaged {kind} ({collapsed(errors[0])[:120]})")
    if not document.source_format.startswith(kind.lower()):
        raise Unreadable(f"not an {kind} inside (it reads as {document.source_format or 'nothing known'})")
    return tidy(lines)


def read_hwp(data: bytes) -> str:
    """An HWP v5 file: an OLE compound file whose body sections are zlib-compressed records."""
    if not data.startswith(OLE_MAGIC):
        raise Unreadable("a damaged HWP (not an OLE compound file)")
    return read_hangul(data, ".hwp", "HWP")


def read_hwpx(data: bytes) -> str:
    """An HWPX (OWPML) file: a zip of XML, its sections in Contents/section*.xml."""
    if not data.startswith(ZIP_MAGIC):
        raise Unreadable("a damaged HWPX (not a zip)")
    check_inflation(data, "HWPX")
    return read_hangul(data, ".hwpx", "HWPX")
