"""Which HTML main-content extraction keeps the answer and leaves the navigation: retriever's own rule against
trafilatura, readability-lxml and jusText, on pages of Debian's LibreOffice help (Korean, English) and Debian FAQ
(Korean, English).

bench/html_labels.json holds the hand labels: for each sampled page, which of its text lines (the non-blank lines of
the page read with nothing left out but scripts, styles and `<nav>`) are navigation or boilerplate: the help
pages' banner (`LibreOffice 7.4 Help`, `Module`, `Contents`, `Index`), their `Related Topics` link lists and their
`Help content debug info` footer; the FAQ pages' navigation header, `Table of Contents`/`차례` list and
previous/next footer. Every other line is content. A line's letters are cut into pieces of PIECE letters; a piece
is kept where the extraction holds it, a piece that content and navigation share counted as content first.

    pip install trafilatura readability-lxml justext   # the libraries compared (one at a time: pip's resolver
                                                       # trips over lxml's extras when given all three at once)
    python bench/html_extraction.py    # downloads the four packages once into the cache (apt-get download)
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpora import DEBIAN_FILES, debian_package
from retriever.reading.documents import DROPPED_TAGS, HtmlText, html_source, read_html

PACKAGES = ("libreoffice-help-ko", "libreoffice-help-en-us", "debian-faq-ko", "debian-faq")
LABELS = Path(__file__).with_name("html_labels.json")
PIECE = 12


def every_line(data: bytes) -> list[str]:
    """The page's text lines with nothing left out but what is never text: what the labels number."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html_source(data))
    tree.strip_tags(DROPPED_TAGS)
    return [line for line in HtmlText().walk(tree.body or tree.root) if line.strip()]


def letters(text: str) -> str:
    return "".join(c for c in text if c.isalnum()).lower()


def pieces(text: str) -> list[str]:
    kept = letters(text)
    return [kept[i : i + PIECE] for i in range(0, len(kept), PIECE)]


def trafilatura_text(data: bytes) -> str:
    import trafilatura

    return trafilatura.extract(html_source(data), include_tables=True, include_comments=False) or ""


def trafilatura_recall(data: bytes) -> str:
    import trafilatura

    return trafilatura.extract(html_source(data), include_tables=True, favor_recall=True) or ""


def readability_text(data: bytes) -> str:
    import lxml.html
    from readability import Document

    return lxml.html.fromstring(Document(html_source(data)).summary(html_partial=True)).text_content()


def justext_text(data: bytes) -> str:
    import justext

    source = html_source(data)
    language = "Korean" if re.search(r'lang="ko', source[:2000]) else "English"
    return "\n".join(
        p.text for p in justext.justext(source.encode(), justext.get_stoplist(language)) if not p.is_boilerplate
    )


EXTRACTORS: dict[str, Callable[[bytes], str]] = {
    "everything (no rule)": lambda data: "\n".join(every_line(data)),
    "retriever rule": read_html,
    "trafilatura": trafilatura_text,
    "trafilatura favor_recall": trafilatura_recall,
    "readability-lxml": readability_text,
    "jusText": justext_text,
}


def scored(page: list[str], navigation: set[int], text: str) -> tuple[int, int, int, int]:
    """(content letters kept, content letters, navigation letters kept, navigation letters)."""
    out = letters(text)
    content = Counter(p for i, line in enumerate(page) if i not in navigation for p in pieces(line))
    nav = Counter(p for i in navigation for p in pieces(page[i]))
    found = {p: out.count(p) for p in content.keys() | nav.keys()}
    kept_content = sum(len(p) * min(n, found[p]) for p, n in content.items())
    kept_nav = sum(len(p) * min(n, max(found[p] - content[p], 0)) for p, n in nav.items())
    return kept_content, sum(len(p) * n for p, n in content.items()), kept_nav, sum(len(p) * n for p, n in nav.items())


def main() -> None:
    labels: dict[str, list[int]] = json.loads(LABELS.read_text(encoding="utf-8"))
    for package in PACKAGES:
        debian_package(package)
    pages = {name: (DEBIAN_FILES / name).read_bytes() for name in labels}
    print(f"{len(pages)} hand-labelled pages ({', '.join(PACKAGES)})\n")
    print(f"{'extraction':26} {'content kept':>12} {'worst page':>10} {'nav kept':>9} {'pages/s':>8}")
    for name, extract in EXTRACTORS.items():
        totals = [0, 0, 0, 0]
        worst = 1.0
        started = time.perf_counter()
        try:
            texts = {page: extract(data) for page, data in pages.items()}
        except ImportError as missing:  # the libraries are compared, not needed: pip install trafilatura …
            print(f"{name:26} not installed ({missing.name})")
            continue
        rate = len(pages) / (time.perf_counter() - started)
        for page, data in pages.items():
            result = scored(every_line(data), set(labels[page]), texts[page])
            totals = [a + b for a, b in zip(totals, result)]
            worst = min(worst, result[0] / max(result[1], 1))
        print(f"{name:26} {totals[0] / totals[1]:12.3f} {worst:10.3f} {totals[2] / totals[3]:9.3f} {rate:8.0f}")


if __name__ == "__main__":
    main()
