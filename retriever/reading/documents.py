"""Documents that are not text: a file's bytes → Markdown text, or why it cannot be read.

PDF, HTML, DOCX, HWP and HWPX are read by their own parsers and written out as Markdown, so the rest of the pipeline
reads them as it reads any Markdown note: a PDF (pdf.py) gets headings from its bookmarks or its type and a
`<!-- p. N -->` line atop each page (a passage's heading path ends with its page), HTML's h1–h6, DOCX's
`Title`/`Heading N` styles and HWP's outline levels (hwp.py) become `#` headings. A line of body text that Markdown
would read as a heading, an underline or a code fence gets a backslash, so only the document's own headings head
sections. The text written here is the note's text everywhere: what is chunked, and what `get` returns, so a
passage's line is a line of it.

The parsers are imported only when such a file is read: deciding that an index is up to date hashes bytes, and
must not pay for them. Nothing here touches files (notes.py does).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .conversion import OLE_MAGIC, Unreadable, check_inflation, collapsed, escaped, heading, parser, tidy

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".org", ".rst", ".adoc", ".asciidoc"})  # read as UTF-8


@contextmanager
def quiet(logger: str) -> Iterator[None]:
    """A parser's own complaints about a damaged file are not the user's warning: the skip reason is."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        log.setLevel(level)


def read_pdf(data: bytes) -> str:
    """pdf.py reads PDFs; imported here only when one is read."""
    from .pdf import read_pdf as read

    return read(data)


DROPPED_TAGS = ["head", "script", "style", "nav", "noscript", "template", "svg", "iframe"]
BLOCK_TAGS = frozenset(
    {"address", "article", "aside", "blockquote", "caption", "dd", "details", "dialog", "div", "dl", "dt"}
    | {"fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "li", "main", "ol", "p", "section"}
    | {"summary", "table", "tbody", "tfoot", "thead", "ul"}
)
HEADING_TAGS = {f"h{n}": n for n in range(1, 7)}
# The HTML parser looks through every open element for each tag it meets (the standard's "in scope" checks), so
# its time is the number of tags times their depth: 40 000 nested <div> took 17 s, 100 000 minutes. Browsers stop
# nesting at 512 (Blink's parser), so no page anyone reads is deeper: a deeper one is skipped before it is parsed.
MAX_HTML_DEPTH = 512
TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)")  # no attributes: a `[^>]*` would scan from every `<` to the end
# Elements that never hold others (void), or that the next of their kind closes (optional end tags): they add no
# depth, however they are written.
FLAT_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
    | {"p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "thead", "tbody", "tfoot", "colgroup"}
    | {"caption", "rb", "rt", "rtc", "rp", "html", "head", "body"}
)
CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w-]+)""", re.IGNORECASE)


def html_source(data: bytes) -> str:
    """UTF-8, else the charset the page declares (Korean pages still come as EUC-KR)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = CHARSET.search(data[:4096])
    try:
        return data.decode(declared.group(1).decode("ascii")) if declared else data.decode("utf-8")
    except (LookupError, UnicodeDecodeError):
        raise Unreadable("HTML in neither UTF-8 nor a charset it declares") from None


class HtmlText:
    """Walks the body in document order, one line per block: text runs inside a block join into one line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.run: list[str] = []

    def flush(self, gap: bool = False) -> None:
        text = collapsed("".join(self.run))
        self.run = []
        if text and text != "-":  # "-": an empty list item
            self.lines.append(escaped(text))
        if gap and self.lines and self.lines[-1]:
            self.lines.append("")

    def walk(self, root: Any) -> list[str]:
        stack: list[tuple[Any, bool]] = [(root, False)]  # (node, closing): iterative, as pages nest deeply
        while stack:
            node, closing = stack.pop()
            tag = node.tag
            if closing:
                self.flush(gap=tag != "li")
            elif tag == "-text":
                self.run.append(node.text_content or "")
            elif tag in HEADING_TAGS:
                self.flush()
                title = collapsed(node.text(deep=True))  # text nodes keep their own spaces: "Hel<b>lo</b>"
                self.lines += heading(HEADING_TAGS[tag], title) if title else []
            elif tag == "pre":
                self.flush(gap=True)
                code = (node.text(deep=True) or "").strip("\n").split("\n")
                self.lines += [
                    "```",
                    *(escaped(line) if line.lstrip()[:3] in ("```", "~~~") else line for line in code),
                ]
                self.lines += ["```", ""]
            elif tag == "tr":
                self.flush()
                cells = [collapsed(c.text(deep=True, separator=" ")) for c in node.iter() if c.tag in ("td", "th")]
                self.run = [" | ".join(c for c in cells if c)]
                self.flush()
            elif tag == "br":
                self.flush()
            else:
                if tag in BLOCK_TAGS:
                    self.flush()
                    stack.append((node, True))
                    self.run = ["- "] if tag == "li" else []
                stack.extend((child, False) for child in reversed(list(node.iter(include_text=True))))
        self.flush()
        return self.lines


def html_depth(source: str) -> int:
    """How deep the page nests its elements, as its tags say: one pass, before the parser pays for the depth."""
    depth = deepest = 0
    for match in TAG.finditer(source):
        if match.group(2).lower() in FLAT_TAGS:
            continue
        depth = max(depth - 1, 0) if match.group(1) else depth + 1
        deepest = max(deepest, depth)
    return deepest


def read_html(data: bytes) -> str:
    """The body's text, h1–h6 as headings, lists as `- ` items, table rows as cells between ` | `, `<pre>` fenced;
    scripts, styles, the head and the page's navigation (see `navigation`) left out."""
    lexbor = parser("selectolax.lexbor", "selectolax")
    source = html_source(data)
    if html_depth(source) > MAX_HTML_DEPTH:
        raise Unreadable(f"HTML nested over {MAX_HTML_DEPTH} elements deep (no browser nests deeper)")
    tree = lexbor.LexborHTMLParser(source)
    tree.strip_tags(DROPPED_TAGS)
    for node in navigation(tree):
        node.decompose()
    lines = HtmlText().walk(tree.body or tree.root)
    return tidy(lines)


# Landmarks that hold a page's own text: a header, footer or aside inside one belongs to that text (an article's
# byline, a note box); outside every one it is the site's banner, footer or sidebar, repeated on every page.
CONTENT_LANDMARKS = frozenset({"article", "main", "section"})
NAVIGATION_ROLES = frozenset({"navigation", "banner", "contentinfo", "search"})
# Class and id words that page generators (DocBook, Sphinx, most site themes) give their navigation bars.
NAVIGATION_CLASSES = frozenset({"navheader", "navfooter", "navbar", "breadcrumb", "breadcrumbs", "sphinxsidebar"})
LINK_BLOCK_MIN_LINKS = 2
LINK_BLOCK_SHARE = 0.7  # of a block's letters, in its links' text
# Letters outside its links a link block may hold: a label (`차례`, `Related Topics`, `Table of Contents`). A page
# whose one-line abstract sits beside a long contents list keeps the abstract: their common block is no link block.
LINK_BLOCK_OTHER = 20
# How far above its links a link block may be: DocBook's nested contents are 7 levels above their deepest link. The
# bound keeps a page of many links nested 512 deep from costing links × 512 steps.
LINK_BLOCK_DEPTH = 10


def navigation(tree: Any) -> list[Any]:
    """The page's navigation, outermost elements only: page-level header (unless it holds the page's `h1`: many
    themes title the page there), footer and aside, navigation roles and bars, and blocks that are mostly links
    (see `link_blocks`)."""
    found = [
        node
        for node in tree.css("header, footer, aside")
        if not within(node, CONTENT_LANDMARKS) and not (node.tag == "header" and node.css_first("h1"))
    ]
    for node in tree.css("[role], [class], [id]"):
        words = set((node.attributes.get("class") or "").lower().split()) | {(node.id or "").lower()}
        if (node.attributes.get("role") or "").lower() in NAVIGATION_ROLES or words & NAVIGATION_CLASSES:
            found.append(node)
    found += link_blocks(tree)
    return outermost(found)


def within(node: Any, tags: frozenset[str]) -> bool:
    """Whether an element sits inside one of these tags, or inside the element a page marks `role=main`."""
    parent = node.parent
    while parent is not None:
        if parent.tag in tags or (parent.attributes.get("role") or "").lower() == "main":
            return True
        parent = parent.parent
    return False


def link_blocks(tree: Any) -> list[Any]:
    """Blocks whose letters are mostly the text of links, at least LINK_BLOCK_MIN_LINKS of them, with little else: a
    table of contents (DocBook's `차례`), a list of related pages, a row of previous/next links. Found from the links
    up, so a long page costs its links times their depth, not its elements times theirs."""
    links: dict[int, tuple[Any, int, int]] = {}  # an ancestor's mem_id → (node, links, their letters)
    for link in tree.css("a[href]"):
        letters = letter_count(link.text(deep=True))
        parent, up = link.parent, 0
        while parent is not None and parent.tag not in ("body", "html") and up < LINK_BLOCK_DEPTH:
            node, count, total = links.get(parent.mem_id, (parent, 0, 0))
            links[parent.mem_id] = (node, count + 1, total + letters)
            parent, up = parent.parent, up + 1
    found = []
    for node, count, linked in links.values():
        if count < LINK_BLOCK_MIN_LINKS:
            continue
        other = letter_count(node.text(deep=True)) - linked
        if other <= min(LINK_BLOCK_OTHER, (1 - LINK_BLOCK_SHARE) * (linked + other)):
            found.append(node)
    return found


def letter_count(text: str | None) -> int:
    return sum(1 for c in text or "" if c.isalnum())


def outermost(nodes: list[Any]) -> list[Any]:
    """The nodes no other of them holds: removing a node removes what it holds. Each element's answer (is it, or an
    element above it, one of the nodes) is kept, so thousands of nodes 512 deep cost their elements, not nodes ×
    depth."""
    chosen = {node.mem_id for node in nodes}
    covered: dict[int, bool] = {}  # an element's mem_id → it or one above it is chosen
    kept, seen = [], set()
    for node in nodes:
        path, parent = [], node.parent
        while parent is not None and parent.mem_id not in covered and parent.mem_id not in chosen:
            path.append(parent.mem_id)
            parent = parent.parent
        inside = parent is not None and (parent.mem_id in chosen or covered[parent.mem_id])
        covered.update(dict.fromkeys(path, inside))
        if not inside and node.mem_id not in seen:
            seen.add(node.mem_id)
            kept.append(node)
    return kept


DOCX_HEADING = re.compile(r"^heading (\d)$", re.IGNORECASE)


def docx_lines(block: Any) -> list[str]:
    """A paragraph or a table of a DOCX body as lines. `Title` is level 1, so `Heading N` is level N+1 below it."""
    if hasattr(block, "rows"):
        rows = []
        for row in block.rows:
            cells = [collapsed(cell.text) for cell in row.cells]
            # A merged cell is listed once per grid column it spans: keep it once.
            unique = [c for i, c in enumerate(cells) if c and (i == 0 or c != cells[i - 1])]
            rows.append(escaped(" | ".join(unique)))
        return ["", *rows, ""]
    text = collapsed(block.text)
    style = block.style.name if block.style is not None else ""
    level = 1 if style.lower() == "title" else (int(m.group(1)) + 1 if (m := DOCX_HEADING.match(style)) else 0)
    if not text:
        return []
    if level:
        return heading(level, text)
    return [("- " if style.lower().startswith("list") else "") + escaped(text)]


def read_docx(data: bytes) -> str:
    """Paragraphs and tables in document order; headings by their `Heading N` style, list paragraphs as items."""
    if data.startswith(OLE_MAGIC):
        raise Unreadable("an encrypted Word file or an old .doc, not DOCX")
    check_inflation(data)
    docx = parser("docx", "python-docx")
    document = docx.Document(io.BytesIO(data))
    return tidy([line for block in document.iter_inner_content() for line in docx_lines(block)])


def read_hwp(data: bytes) -> str:
    """Hangul documents are read in hwp.py, which builds on this module."""
    from .hwp import read_hwp as read

    return read(data)


def read_hwpx(data: bytes) -> str:
    from .hwp import read_hwpx as read

    return read(data)


KINDS = {".pdf": "PDF", ".html": "HTML", ".htm": "HTML", ".docx": "DOCX", ".hwp": "HWP", ".hwpx": "HWPX"}
READERS: dict[str, Callable[[bytes], str]] = {
    ".pdf": read_pdf,
    ".html": read_html,
    ".htm": read_html,
    ".docx": read_docx,
    ".hwp": read_hwp,
    ".hwpx": read_hwpx,
}
DOCUMENT_SUFFIXES = frozenset(READERS)


def read_document(suffix: str, data: bytes) -> str:
    """A document's text as Markdown; Unreadable when it cannot be read, whatever its parser raised."""
    try:
        return READERS[suffix](data)
    except Unreadable:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file may trip any error in a parser: it costs that file only
        detail = collapsed(str(exc))[:120] or type(exc).__name__
        raise Unreadable(f"a damaged {KINDS[suffix]} ({detail})") from None
