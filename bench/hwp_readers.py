"""Which library reads HWP (v5) and HWPX best: each candidate over real files that ship inside PyPI packages.

The files are the sample and test documents of five sdists (extract-hwp, jakal-hwpx, master-of-hwp, openhanji,
python-hwpx), fetched once with `pip download` into CACHE/hwp/files. The candidates are installed into their own
venv so the product's stays clean:

    python -m venv ~/.cache/retriever-bench/hwp/venv
    ~/.cache/retriever-bench/hwp/venv/bin/pip install dochan hwp2markdown ai-hwp-reader extract-hwp \
        hwp-hwpx-parser gethwp pyhwp
    PYTHONPATH=. python bench/hwp_readers.py   # the product's venv; the candidates' venv is appended to sys.path

Per candidate: files read, Hangul syllables out, recall of the Hangul words that at least two candidates agree on
(text intact), files with table rows, headings, the footnote of footnote-01.hwp, what it says of the encrypted
sample, and seconds for all files.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

CACHE = Path.home() / ".cache" / "retriever-bench" / "hwp"
FILES = CACHE / "files"
VENV_SITE = CACHE / "venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
SDISTS = ["extract-hwp==0.2.1", "jakal-hwpx==1.0", "master-of-hwp==0.2.4", "openhanji==0.1.0", "python-hwpx==6.9.0"]
ENCRYPTED = "extract_hwp__protected_document.hwp"
FOOTNOTE = ("master_of_hwp__footnote-01.hwp", "플라스틱 액체란")
HANGUL_WORD = re.compile(r"[가-힣]{2,}")
TABLE_ROW = re.compile(r"^\|?[^|\n]+\|[^|\n]+", re.MULTILINE)
HEADING = re.compile(r"^#{1,6} \S", re.MULTILINE)


def fetch_files() -> list[Path]:
    """Every .hwp/.hwpx of the sdists, named package__file, fetched once."""
    if not FILES.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", tmp, "-q"]
            subprocess.run([*pip, *SDISTS], check=True)
            out = folder / "files"
            out.mkdir()
            for sdist in folder.glob("*.tar.gz"):
                package = sdist.name.rsplit("-", 1)[0]
                with tarfile.open(sdist) as archive:
                    for member in archive.getmembers():
                        if member.isfile() and member.name.lower().endswith((".hwp", ".hwpx")):
                            data = archive.extractfile(member).read()  # type: ignore[union-attr]
                            (out / f"{package}__{Path(member.name).name}").write_bytes(data)
            FILES.parent.mkdir(parents=True, exist_ok=True)
            out.rename(FILES)
    return sorted(FILES.iterdir())


def retriever_reader(path: Path) -> str:
    from retriever.reading.documents import read_document

    return read_document(path.suffix.lower(), path.read_bytes())


def dochan_reader(path: Path) -> str:
    import dochan

    document = dochan.Dochan(str(path))
    errors = [e for e in document.errors if e.startswith("ERR")]
    if errors and not document.to_plain_text().strip():
        raise ValueError("; ".join(errors))
    return document.to_markdown()


def hwp2md_reader(path: Path) -> str:
    import hwp2md

    return hwp2md.convert_bytes(path.read_bytes(), path.name).markdown


def ai_hwp_reader(path: Path) -> str:
    import hwp_reader

    return str(hwp_reader.render(hwp_reader.read(str(path))))


def extract_hwp_reader(path: Path) -> str:
    import extract_hwp

    text, error = extract_hwp.extract_text_from_hwp(str(path))
    if error:
        raise ValueError(error)
    return text


def hwp_hwpx_parser_reader(path: Path) -> str:
    import hwp_hwpx_parser

    with hwp_hwpx_parser.Reader(str(path)) as reader:
        return reader.text


def gethwp_reader(path: Path) -> str:
    import gethwp

    return gethwp.read_hwp(str(path)) if path.suffix == ".hwp" else gethwp.read_hwpx(str(path))


def pyhwp_reader(path: Path) -> str:
    if path.suffix != ".hwp":
        raise ValueError("HWP v5 only")
    from hwp5.hwp5txt import main  # noqa: F401 - its import fails on Python 3.11 (xmlmodel)

    raise ValueError("unreachable")


CANDIDATES: dict[str, tuple[str, Callable[[Path], str]]] = {
    "retriever (dochan model)": ("MIT + ours", retriever_reader),
    "dochan 1.15.0 (2026-10)": ("MIT", dochan_reader),
    "hwp2markdown 0.1.0 (2026-10)": ("MIT", hwp2md_reader),
    "ai-hwp-reader 0.5.2 (2026-08)": ("MIT", ai_hwp_reader),
    "extract-hwp 0.2.1 (2026-10)": ("BSD-3", extract_hwp_reader),
    "hwp-hwpx-parser 1.0.0 (2026-01)": ("Apache-2.0", hwp_hwpx_parser_reader),
    "gethwp 1.1.1 (2024-02)": ("MIT", gethwp_reader),
    "pyhwp 0.1b15 (2020-05)": ("AGPL-3.0", pyhwp_reader),
}


def main() -> None:
    sys.path.append(str(VENV_SITE))
    files = fetch_files()
    outputs: dict[str, dict[str, str]] = {}
    report: dict[str, list[str]] = {}
    failed: dict[str, dict[str, str]] = {}
    for name, (licence, read) in CANDIDATES.items():
        texts: dict[str, str] = {}
        failures: dict[str, str] = {}
        start = time.perf_counter()
        for path in files:
            try:
                texts[path.name] = read(path)
            except Exception as exc:  # noqa: BLE001 - a candidate's failure on a file is a measurement
                failures[path.name] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:70]}"
        seconds = time.perf_counter() - start
        outputs[name] = texts
        encrypted = failures.get(ENCRYPTED) or f"returned {len(texts.get(ENCRYPTED, '').strip())} chars"
        report[name] = [licence, f"{seconds:.2f}", encrypted]
        failed[name] = {f: why for f, why in failures.items() if f != ENCRYPTED}
    agreed = Counter(w for texts in outputs.values() for text in texts.values() for w in set(HANGUL_WORD.findall(text)))
    consensus = {w for w, n in agreed.items() if n >= 2}
    readable = [p.name for p in files if p.name != ENCRYPTED]
    print(f"{len(files)} files ({len(readable)} readable, 1 encrypted) from {', '.join(SDISTS)}\n")
    print(
        "| candidate | licence | files read | Hangul syllables | agreed words found | files with table rows "
        "| files with headings | footnote kept | encrypted sample | s (all files) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, texts in outputs.items():
        licence, seconds, encrypted = report[name][:3]
        read = sum(1 for f in readable if texts.get(f, "").strip())
        joined = "\n".join(texts.values())
        found = {w for text in texts.values() for w in HANGUL_WORD.findall(text)}
        recall = len(found & consensus) / max(len(consensus), 1)
        syllables = len(re.findall(r"[가-힣]", joined))
        tables = sum(1 for t in texts.values() if TABLE_ROW.search(t))
        headings = sum(1 for t in texts.values() if HEADING.search(t))
        footnote = "yes" if FOOTNOTE[1] in texts.get(FOOTNOTE[0], "") else "no"
        print(
            f"| {name} | {licence} | {read}/{len(readable)} | {syllables} | {recall:.2f} | {tables} | {headings} "
            f"| {footnote} | {encrypted[:60]} | {seconds} |"
        )
    for name, failures in failed.items():
        for path, why in list(failures.items())[:3]:
            print(f"- {name} failed on {path}: {why}")


if __name__ == "__main__":
    main()
