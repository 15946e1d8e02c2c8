"""Which PDF library keeps words: each candidate's text of real Debian manuals, scored against the same document
as its package also ships it (HTML, plain text or the OpenOffice source), and timed.

Word-boundary accuracy is the share of the extracted text's letters that lie in words the reference text also
has (lowercased, letters only). Words run together ("지원하는그래픽하드웨어와") and line-end hyphenation left
split ("instal-" "lation") are words the reference does not have, so both lower it; a library that drops text does
not gain, since only the letters it does extract are counted. The reference is the same manual, so a low share is
extraction, not vocabulary. Each document is cut to its pages PAGES[0]..PAGES[1] (past the front matter), so a
run takes minutes on a busy machine. Pages per second: once, on this machine, after one warm-up read.
The last rows are retriever's own reader (retriever.pdf.read_pdf: sections, navigation left out, hyphenation
joined) beside the bare library call it is built on.

    python bench/pdf_libraries.py            # downloads five .debs once into ~/.cache/retriever-bench/debian
"""

from __future__ import annotations

import gzip
import io
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.corpora import CACHE  # noqa: E402

DEBIAN = CACHE / "debian"
GUIDE = "usr/share/doc/installation-guide-amd64"
HISTORY = "usr/share/doc/debian-history/docs"
FAQ = "usr/share/doc/debian/FAQ"


@dataclass(frozen=True)
class Document:
    name: str
    package: str
    pdf: str  # path inside the package (.gz: compressed)
    reference: str  # glob of the same text inside the package
    kind: str  # how it was typeset


DOCUMENTS = [
    Document("install.ko", "installation-guide-amd64", f"{GUIDE}/ko/install.ko.pdf.gz", f"{GUIDE}/ko/*.html", "ko, LaTeX"),
    Document("history.ko", "debian-history", f"{HISTORY}/project-history.ko.pdf", f"{HISTORY}/*.ko.html", "ko, LaTeX"),
    Document("install.en", "installation-guide-amd64", f"{GUIDE}/en/install.en.pdf.gz", f"{GUIDE}/en/*.html", "en, LaTeX"),
    Document("faq.en", "debian-faq", f"{FAQ}/debian-faq.en.pdf.gz", f"{FAQ}/debian-faq.en.txt.gz", "en, LaTeX"),
    Document("coco", "coco-doc", "usr/share/doc/coco-doc/UserManual.pdf", "usr/share/doc/coco-doc/UserManual.odt",
             "en, OpenOffice"),
]
WORD = re.compile(r"[^\W\d_]+")
PAGES = (8, 38)


def unpacked(package: str) -> Path:
    """The package's files under the cache, downloaded (apt-get download) and unpacked once."""
    out = DEBIAN / "x" / package
    if out.is_dir():
        return out
    DEBIAN.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=DEBIAN) as tmp:
        subprocess.run(["apt-get", "download", package], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        (deb,) = Path(tmp).glob("*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        (Path(tmp) / "x").rename(out)
    return out


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
    from retriever.pdf import read_pdf

    return [read_pdf(data)]


LIBRARIES: dict[str, tuple[Callable[[bytes], list[str]], str]] = {
    "pypdf": (pypdf_pages, "BSD-3-Clause"),
    "pypdfium2": (pdfium_pages, "Apache-2.0 / BSD-3-Clause (PDFium)"),
    "pdfminer.six": (pdfminer_pages, "MIT"),
    "pdfplumber": (pdfplumber_pages, "MIT"),
    "PyMuPDF": (pymupdf_pages, "AGPL-3.0 (or commercial)"),
    "retriever read_pdf": (retriever_pages, "(pypdfium2)"),
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


def main() -> None:
    names = sys.argv[1:] or list(LIBRARIES)
    corpus = []
    for doc in DOCUMENTS:
        root = unpacked(doc.package)
        data, pages = excerpt(read(root / doc.pdf))
        words = set().union(*(vocabulary(reference_text(p)) for p in root.glob(doc.reference)))
        corpus.append((doc, data, words, pages))
    print("documents: " + ", ".join(f"{d.name} ({d.kind}, {n} p.)" for d, _, _, n in corpus))
    header = ["library", *(d.name for d, _, _, _ in corpus), "pages/s", "licence"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in names:
        extract, licence = LIBRARIES[name]
        shares, pages, seconds = [], 0, 0.0
        for _doc, data, words, count in corpus:
            extract(data)  # warm-up: imports, caches
            started = time.perf_counter()
            text = "\n".join(extract(data))
            seconds += time.perf_counter() - started
            pages += count
            shares.append(f"{known_share(text, words):.1%}")
        print(f"| {name} | " + " | ".join(shares) + f" | {pages / seconds:.0f} | {licence} |", flush=True)


if __name__ == "__main__":
    main()
