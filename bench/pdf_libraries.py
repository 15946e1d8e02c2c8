"""Which PDF library keeps words: each candidate's text of real Debian manuals, scored against the same document
as its package also ships it (HTML, plain text or the OpenOffice source), and timed.

Word-boundary accuracy is the share of the extracted text's letters that lie in words the reference text also
has (lowercased, letters only). Words run together ("지원하는그래픽하드웨어와") and line-end hyphenation left
split ("instal-" "lation") are words the reference does not have, so both lower it; a library that drops text does
not gain, since only the letters it does extract are counted. The reference is the same manual, so a low share is
extraction, not vocabulary. For this score each document is cut to its pages PAGES[0]..PAGES[1] (past the front
matter), so a run takes minutes on a busy machine.

Left out: debian-history's Korean PDF (project-history.ko.pdf, DBLaTeX + xdvipdfmx). Its pages are typeset with
no gap between Korean words at all (render one: "이릴리스에는패키지를설치하고…"), so every library reads the same
runs and scores ~25 % against its spaced HTML; the measure there is of the document, not of a library.

Speed: pages per second, of wall time and of CPU time, over the whole documents (every page, not the cut): the
bare PDFium call beside retriever's own reader (retriever.reading.pdf.read_pdf: sections, navigation left out,
hyphenation joined), each the median of REPEATS runs after one warm-up read, with the load average printed,
since the machine is shared. The "cut" column is one timed pass over the cut pages of each library.

pdfplumber runs with its defaults, as a user would call it: it joins glyphs closer than x_tolerance=3 pt into one
word, and LaTeX's interword space at 10 pt is about 3.3 pt, less on a justified line, so words run together.
With x_tolerance=1.5 it scored as PDFium does on five pages of each manual (97.5 %, 99.4 %, 98.6 %), but it reads
about a page a second, pdfminer.six (beneath it) three: both far from the 20 pages/s a build needs.
A library that is not installed is skipped with a note.

    python bench/pdf_libraries.py [LIBRARY …]   # downloads three .debs once into ~/.cache/retriever-bench/debian
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
import re
import statistics
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.corpora import debian_package

GUIDE = "usr/share/doc/installation-guide-amd64"
FAQ = "usr/share/doc/debian/FAQ"


@dataclass(frozen=True)
class Document:
    name: str
    package: str
    pdf: str  # path inside the package (.gz: compressed)
    reference: str  # glob of the same text inside the package
    kind: str  # how it was typeset


DOCUMENTS = [
    Document(
        "install.ko", "installation-guide-amd64", f"{GUIDE}/ko/install.ko.pdf.gz", f"{GUIDE}/ko/*.html", "ko, LaTeX"
    ),
    Document(
        "install.en", "installation-guide-amd64", f"{GUIDE}/en/install.en.pdf.gz", f"{GUIDE}/en/*.html", "en, LaTeX"
    ),
    Document("faq.en", "debian-faq", f"{FAQ}/debian-faq.en.pdf.gz", f"{FAQ}/debian-faq.en.txt.gz", "en, LaTeX"),
    Document(
        "coco",
        "coco-doc",
        "usr/share/doc/coco-doc/UserManual.pdf",
        "usr/share/doc/coco-doc/UserManual.odt",
        "en, OpenOffice",
    ),
]
WORD = re.compile(r"[^\W\d_]+")
PAGES = (8, 38)
REPEATS = 3
TIMED = ("pypdfium2", "retriever read_pdf")  # timed over whole documents


def read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def reference_text(path: Path) -> str:
    data = read(path)
    if path.suffix == ".odt":
        with zipfile.ZipFile(io.BytesIO(data)) as odt:
            data = odt.read("content.xml")
    text = data.decode("utf-8", "replace")
    return re.sub(r"<[^>]*>", " ", text) if path.suffix in (".html", ".odt") else text


def vocabulary(text: str) -> set[str]:
    return {w.lower() for w in WORD.findall(text)}


def known_share(text: str, words: set[str]) -> float:
    found = WORD.findall(text)
    total = sum(len(w) for w in found)
    return sum(len(w) for w in found if w.lower() in words) / max(total, 1)


def pypdf_pages(data: bytes) -> list[str]:
    import pypdf

    return [page.extract_text() or "" for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def pdfium_pages(data: bytes) -> list[str]:
    import pypdfium2

    document = pypdfium2.PdfDocument(data)
    return [page.get_textpage().get_text_bounded() for page in document]


def pdfminer_pages(data: bytes) -> list[str]:
    from pdfminer.high_level import extract_text

    return extract_text(io.BytesIO(data)).split("\f")


def pdfplumber_pages(data: bytes) -> list[str]:
    import pdfplumber

    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return [page.extract_text() or "" for page in pdf.pages]


def pymupdf_pages(data: bytes) -> list[str]:
    import pymupdf

    return [page.get_text() for page in pymupdf.open(stream=data)]


def retriever_pages(data: bytes) -> list[str]:
    from retriever.reading.pdf import read_pdf

    return [read_pdf(data)]


LIBRARIES: dict[str, tuple[Callable[[bytes], list[str]], str, str]] = {  # extract, module, licence
    "pypdf": (pypdf_pages, "pypdf", "BSD-3-Clause"),
    "pypdfium2": (pdfium_pages, "pypdfium2", "Apache-2.0 / BSD-3-Clause (PDFium)"),
    "pdfminer.six": (pdfminer_pages, "pdfminer", "MIT"),
    "pdfplumber": (pdfplumber_pages, "pdfplumber", "MIT"),
    "PyMuPDF": (pymupdf_pages, "pymupdf", "AGPL-3.0 (or commercial)"),
    "retriever read_pdf": (retriever_pages, "pypdfium2", "(pypdfium2)"),
}


def excerpt(data: bytes) -> tuple[bytes, int]:
    """The document cut to PAGES, and how many pages that left."""
    import pypdfium2

    whole = pypdfium2.PdfDocument(data)
    cut = pypdfium2.PdfDocument.new()
    pages = list(range(PAGES[0], min(PAGES[1], len(whole))))
    cut.import_pages(whole, pages)
    out = io.BytesIO()
    cut.save(out)
    return out.getvalue(), len(pages)


def page_count(data: bytes) -> int:
    import pypdfium2

    return len(pypdfium2.PdfDocument(data))


def installed(name: str) -> bool:
    """Whether a library's module imports; the bench skips the ones that do not, with a note."""
    module = LIBRARIES[name][1]
    if importlib.util.find_spec(module) is None:
        print(f"skipped {name}: not installed (no module {module})")
        return False
    return True


def pages_per_second(extract: Callable[[bytes], list[str]], documents: list[bytes], pages: int) -> tuple[float, float]:
    """Pages per second of wall time and of this process's CPU time, each the median of REPEATS passes over every
    document after one warm-up pass: on a shared machine the wall rate is what a build sees then, the CPU rate
    what it would see alone."""
    for data in documents:
        extract(data)
    wall, cpu = [], []
    for _ in range(REPEATS):
        started, used = time.perf_counter(), time.process_time()
        for data in documents:
            extract(data)
        wall.append(pages / (time.perf_counter() - started))
        cpu.append(pages / (time.process_time() - used))
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    names = [name for name in sys.argv[1:] or list(LIBRARIES) if installed(name)]
    corpus, whole = [], []
    for doc in DOCUMENTS:
        root = debian_package(doc.package)
        data = read(root / doc.pdf)
        whole.append(data)
        cut, pages = excerpt(data)
        words = set().union(*(vocabulary(reference_text(p)) for p in root.glob(doc.reference)))
        corpus.append((doc, cut, words, pages))
    print("documents: " + ", ".join(f"{d.name} ({d.kind}, {n} p.)" for d, _, _, n in corpus))
    header = ["library", *(d.name for d, _, _, _ in corpus), "pages/s (cut)", "licence"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in names:
        extract, _, licence = LIBRARIES[name]
        shares, pages, seconds = [], 0, 0.0
        for _doc, data, words, count in corpus:
            extract(data)  # warm-up: imports, caches
            started = time.perf_counter()
            text = "\n".join(extract(data))
            seconds += time.perf_counter() - started
            pages += count
            shares.append(f"{known_share(text, words):.1%}")
        print(f"| {name} | " + " | ".join(shares) + f" | {pages / seconds:.0f} | {licence} |", flush=True)
    total = sum(page_count(data) for data in whole)
    print(f"\nwhole documents ({total} pages), median of {REPEATS}:")
    for name in (n for n in TIMED if n in names):
        before = os.getloadavg()[0]
        wall, cpu = pages_per_second(LIBRARIES[name][0], whole, total)
        load = f"load average {before:.1f} → {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        print(f"  {name}: {wall:.0f} pages/s, {cpu:.0f} per CPU second ({load})", flush=True)


if __name__ == "__main__":
    main()
