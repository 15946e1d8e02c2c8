"""A PDF's text as a person reads it: words kept apart, sections headed, the page's furniture left out.

PDFium (pypdfium2) reads the text: it puts a space wherever the glyphs leave a gap, as LaTeX output needs (its
Korean runs carry no space characters at all; pypdf ran their words together), and at 100+ pages a second it was
the fastest of the libraries measured (bench/pdf_libraries.py has the table).

Sections come from the outline (bookmarks) where the PDF has one: each bookmark heads the line on its page that
names it, or the top of its page. Without an outline, a line set alone in a larger or bolder type than the body
text is a heading, a larger size a higher level.

Left out, as navigation and not content: lines repeated at the top or bottom edge of many pages (running headers
and footers, their page numbers turned into `#` so "Chapter 3 … 21" repeats) and any edge line in the band they
sit in, bare page numbers, dot-leader contents entries, and whole pages made mostly of entries ending in page
numbers (tables of contents, indexes). Korean typeset without spaces between words gets them from Kiwi. A word
hyphenated at a line's end is joined, without its hyphen unless the document writes it with one elsewhere.

The page stays the location: each page starts with a `<!-- p. N -->` line (a Markdown comment, so the text reads
as Markdown still), and structure.py/chunking.py end passages at it and add `p. N` to their heading path, so a
hit says its page and `get` of its `path#line` opens on that page.
"""

from __future__ import annotations

import ctypes
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from .conversion import Unreadable, escaped, heading, parser

PAGE_MARK = "<!-- p. {} -->"
MAX_HEADING_CHARS = 100
EDGE_LINES = 2  # lines at each edge of a page where running headers and footers sit
MIN_REPEATS = 3  # pages an edge line repeats on to be a running header or footer
NAVIGATION_SHARE = 0.6  # of a page's lines ending in page numbers: a contents or index page
PAGE_NUMBER = re.compile(
    r"^[\W_]*(?:page\s*)?(?:\d{1,4}|[ivxlcdm]{1,7})(?:\s*(?:/|of)\s*\d{1,4})?[\W_]*$", re.IGNORECASE
)
DOT_LEADER = re.compile(r"(?:\.\s?){4,}[^.]{0,12}$|…{2,}[^…]{0,12}$")  # the page number, perhaps after a stray accent
SECTION_NUMBER = re.compile(r"^\s*(?:\d{1,3}|[A-Z])(?:\.\d{1,3})*\.?\s+\S")  # `3.1.2 Title`, `D.4 Title`
ENTRY = re.compile(
    r"^(?:(?:\d{1,3}|[A-Z])(?:\.\d{1,3})*\.?\s+)?\D.{0,120}?(?:\s|,)\s*(?:\d{1,4}|[ivxlcdm]{1,7})(?:\s*[,–-]\s*\d{1,4})*$",
    re.IGNORECASE,
)
HYPHENS = "-\u00ad\u2010\x02\ufffe"  # a hyphen, a soft one, and what PDFium writes for one it made itself
INNER_HYPHEN = re.compile(r"(\w*)[\x02\ufffe](\w+)")  # PDFium's mark where it put a word hyphenated at a line's end
# back on one line: `full\ufffeupgrade`
NUMBER_LABEL = re.compile(r"(?:chapter|appendix|part|제)?[#a-z]?(?:\.#)*[.장절편]?\.?")  # keys: digits are `#`
LABEL = re.compile(r"^\s*(?:chapter|appendix|part|부록)\s*\w{1,4}\s*$|^\s*제\s?\d+\s?장\s*$", re.IGNORECASE)
TITLE_LINES = 3  # lines a bookmarked title may wrap over on its page
SENTENCE_END = (".", ",", ";", ":")
HANGUL_RUN = re.compile(r"[가-힣]+")
RUN_ON = 6.0  # mean syllables in a run of Hangul past which a document was set with no space between words
BOLD_WEIGHT = 600


@dataclass
class Line:
    text: str
    size: float = 0.0  # of its type, in points; 0 when unknown
    bold: bool = False
    top: float = 0.0  # the page's y of its first glyph's top (PDF y grows upwards)
    level: int = 0  # a heading's level, 0 for text


@dataclass
class Page:
    lines: list[Line] = field(default_factory=list)


def key(text: str) -> str:
    """A line for comparing: lower case, letters, digits as `#` (so page numbers and counters compare equal) and
    the dots of section numbers only: a bookmark writes `-` and `'` where its page sets `‑` and `’`."""
    return re.sub(r"\d+", "#", re.sub(r"[^\w.]|_", "", text.lower()))


def style(raw: Any, textpage: Any, index: int) -> tuple[float, bool]:
    size = raw.FPDFText_GetFontSize(textpage, index)
    bold = raw.FPDFText_GetFontWeight(textpage, index) >= BOLD_WEIGHT
    if not bold:
        name = ctypes.create_string_buffer(128)
        raw.FPDFText_GetFontInfo(textpage, index, name, len(name), None)
        bold = b"bold" in name.value.lower() or b"black" in name.value.lower()
    return round(size * 2) / 2, bold


def page_lines(page: Any) -> list[Line]:
    """A page's lines in reading order, each with the type of its first and last glyphs: a line whose two ends
    differ is text with a word set apart, never a heading (size 0)."""
    textpage = page.get_textpage()
    raw_api = parser("pypdfium2.raw", "pypdfium2")
    count = textpage.count_chars()
    text = textpage.get_text_range(0, count) if count > 0 else ""
    lines: list[Line] = []
    aligned = len(text) == count  # one character per glyph index, so offsets in the text are glyph indexes
    offset = 0
    for raw in text.replace("\x00", "").split("\r\n") if "\r\n" in text else text.split("\n"):
        line = Line(raw.rstrip().replace("\u2011", "-"))  # a non-breaking hyphen reads as one
        stripped = raw.strip()
        if aligned and stripped:
            first = offset + raw.index(stripped[0])
            last = first + len(stripped) - 1
            start, end = style(raw_api, textpage, first), style(raw_api, textpage, last)
            if start == end:
                line.size, line.bold = start
            line.top = textpage.get_charbox(first)[3]
        if line.text.strip():
            lines.append(line)
        offset += len(raw) + 2
    return lines


def furniture(pages: list[Page]) -> None:
    """Leave out running headers and footers, bare page numbers and dot-leader entries; empty contents and index
    pages."""
    edges = [(p.lines[:EDGE_LINES], p.lines[-EDGE_LINES:]) for p in pages]
    repeats = Counter(key(line.text) for top, bottom in edges for line in {id(x): x for x in top + bottom}.values())
    bands: set[float] = set()
    for top, bottom in edges:
        for line in top + bottom:
            if repeats[key(line.text)] >= min(MIN_REPEATS, max(len(pages), 2)):
                bands.add(round(line.top))
    for page, (top, bottom) in zip(pages, edges, strict=True):
        if is_navigation(page.lines):
            page.lines = []
            continue
        edge = {id(line) for line in top + bottom}
        page.lines = [
            line
            for line in page.lines
            if not (
                id(line) in edge
                and (
                    PAGE_NUMBER.match(line.text.strip())
                    or repeats[key(line.text)] >= min(MIN_REPEATS, max(len(pages), 2))
                    or (line.level == 0 and round(line.top) in bands and line.top)
                )
            )
            and not DOT_LEADER.search(line.text)
        ]


def is_navigation(lines: list[Line]) -> bool:
    """A contents, list-of-tables or index page: most of its lines are entries ending in a page number, the first
    lines of entries that wrap (a section number, the page number on the next line) or the page's own number."""
    texts = [line.text.strip() for line in lines]
    entries = {i for i, text in enumerate(texts) if DOT_LEADER.search(text) or ENTRY.match(text)}
    wrapped = {i for i in range(len(texts) - 1) if i + 1 in entries and SECTION_NUMBER.match(texts[i])}
    numbers = {i for i, text in enumerate(texts) if PAGE_NUMBER.match(text)}
    return len(texts) >= 5 and len(entries) >= 2 and len(entries | wrapped | numbers) >= NAVIGATION_SHARE * len(texts)


def outline_headings(document: Any, pages: list[Page]) -> bool:
    """Mark each bookmark's line as its heading, or put the bookmark atop its page; False without an outline."""
    marks = [(item.level, item.get_title() or "", item.get_dest()) for item in document.get_toc()]
    marks = [(level, " ".join(title.split()), dest) for level, title, dest in marks if dest is not None]
    marks = [(level, title, dest) for level, title, dest in marks if title and dest.get_index() is not None]
    if not marks:
        return False
    for level, title, dest in marks:
        index = dest.get_index()
        if not 0 <= index < len(pages):
            continue
        lines, wanted, depth = pages[index].lines, key(title), min(level + 1, 6)
        found, span = next(
            (
                (i, span)
                for span in range(1, TITLE_LINES + 1)  # a title may wrap onto further lines
                for i in range(len(lines) - span + 1)
                if not any(line.level for line in lines[i : i + span])
                and names(" ".join(line.text for line in lines[i : i + span]), wanted)
            ),
            (None, 0),
        )
        if found is not None:
            lines[found].text = " ".join(line.text.strip() for line in lines[found : found + span])
            del lines[found + 1 : found + span]
        if found is None:  # where the bookmark points, else the top of its page
            y = dest.get_view()[1][1] if dest is not None and len(dest.get_view()[1]) > 1 else None
            at = next((i for i, line in enumerate(lines) if y is not None and line.top and line.top <= y + 1), 0)
            lines.insert(at, Line(title, level=depth))
            continue
        text = lines[found].text.strip()
        if found and LABEL.match(lines[found - 1].text) and not lines[found - 1].level:  # `Chapter 1` above its title
            text = f"{lines.pop(found - 1).text.strip()} {text}"
            found -= 1
        lines[found] = Line(text, lines[found].size, lines[found].bold, lines[found].top, depth)
    return True


def names(text: str, wanted: str) -> bool:
    """Whether a line is a bookmark's title, perhaps after its section number (`6.3 Spacing`, `제 2 장. …`)."""
    found = key(text)
    return found == wanted or (found.endswith(wanted) and bool(NUMBER_LABEL.fullmatch(found[: -len(wanted)])))


def typographic_headings(pages: list[Page]) -> None:
    """Lines set alone in a larger type than the body's, or in bold where the body is not: the larger the type, the
    higher the level; consecutive lines of one such style are one heading that wrapped."""
    sizes: Counter[tuple[float, bool]] = Counter()
    for page in pages:
        for line in page.lines:
            if line.size:
                sizes[(line.size, line.bold)] += len(line.text)
    if not sizes:
        return
    body, body_bold = sizes.most_common(1)[0][0]

    def stands_out(line: Line) -> bool:
        text = line.text.strip()
        larger = line.size >= body * 1.15
        bolder = line.bold and not body_bold and line.size >= body * 0.95
        return (
            (larger or bolder)
            and len(text) <= MAX_HEADING_CHARS
            and any(ch.isalpha() for ch in text)
            and not text.endswith(SENTENCE_END)
            and not PAGE_NUMBER.match(text)
        )

    styles = sorted({(line.size, line.bold) for p in pages for line in p.lines if stands_out(line)}, reverse=True)
    levels = {s: min(i + 1, 6) for i, s in enumerate(styles)}
    for page in pages:
        merged: list[Line] = []
        for line in page.lines:
            if stands_out(line):
                level = levels[(line.size, line.bold)]
                last = merged[-1] if merged else None
                if last is not None and last.level == level and (last.size, last.bold) == (line.size, line.bold):
                    last.text = f"{last.text.strip()} {line.text.strip()}"
                    continue
                line.level = level
            merged.append(line)
        page.lines = merged


def spaced(pages: list[Page]) -> None:
    """Korean set with no space between its words gets them back from Kiwi's spacing model; text that has them is
    left alone. Some PDFs are typeset so (debian-history's Korean one: "이릴리스에는패키지를설치하고…" on the page
    itself), so no library reads words there; Korean prose averages about three syllables a run."""
    lines = [line for page in pages for line in page.lines if HANGUL_RUN.search(line.text)]
    runs = [len(run) for line in lines for run in HANGUL_RUN.findall(line.text)]
    if not runs or sum(runs) / len(runs) < RUN_ON:
        return
    from .korean import kiwi

    for line, text in zip(lines, kiwi().space([line.text for line in lines], reset_whitespace=False), strict=True):
        line.text = text


def join_hyphenated(pages: list[Page]) -> None:
    """A word split at a line's end (`instal-` / `lation`, or PDFium's `instal\ufffelation`) is joined; its hyphen
    stays only when the document writes the whole word with one elsewhere (`full-upgrade`)."""
    text = " ".join(line.text for page in pages for line in page.lines)
    words = set(re.findall(r"\w+(?:-\w+)*", INNER_HYPHEN.sub(r"\1 \2", text).lower()))

    def joined(head: str, tail: str) -> str:
        hyphened = f"{head}-{tail}".lower() in words and f"{head}{tail}".lower() not in words
        return f"{head}{'-' if hyphened else ''}{tail}"

    for page in pages:
        for line in page.lines:
            line.text = INNER_HYPHEN.sub(lambda match: joined(match.group(1), match.group(2)), line.text)
    lines = [line for page in pages for line in page.lines if not line.level]
    for line, below in pairwise(lines):
        body = line.text.rstrip()
        if len(body) < 2 or body[-1] not in HYPHENS or not body[-2].isalpha():
            continue
        rest = below.text.lstrip()
        match = re.match(r"[^\W\d_]\w*", rest)
        if not match or not rest[0].islower():
            continue
        head = re.search(r"\w+$", body[:-1])
        line.text = body[: len(body) - 1 - (len(head.group(0)) if head else 0)] + joined(
            head.group(0) if head else "", match.group(0)
        )
        below.text = rest[match.end() :].lstrip()


def open_document(data: bytes) -> Any:
    pdfium = parser("pypdfium2", "pypdfium2")
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise Unreadable("an encrypted PDF (it needs a password)") from None
        raise


def read_pdf(data: bytes) -> str:
    """The text as Markdown: a `<!-- p. N -->` line opens each page (N counted from 1 as a viewer counts pages),
    headings are `#` lines, body lines escaped so only headings head sections."""
    document = open_document(data)
    try:
        pages = [Page(page_lines(page)) for page in document]
        if not any(page.lines for page in pages):
            raise Unreadable("a PDF without text (scanned pages need OCR first)")
        spaced(pages)
        if not outline_headings(document, pages):
            typographic_headings(pages)
    finally:
        document.close()
    furniture(pages)
    join_hyphenated(pages)
    out: list[str] = []
    for number, page in enumerate(pages, 1):
        out += ["", PAGE_MARK.format(number), ""]
        for line in page.lines:
            if line.level:
                out += heading(line.level, line.text.strip())
            elif line.text.strip():
                out.append(escaped(line.text.rstrip()))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(out))
    return text.strip("\n") + "\n"
