"""The text_lang column of the dev sets: the language of the passage that holds each query's target, read from the
corpus itself, so that eval can slice by direction (ko→en, en→ko, ...) without looking at what a system returned.

    .venv/bin/python bench/passage_lang.py            # check every query file's column; exit 1 on a difference
    .venv/bin/python bench/passage_lang.py --write    # fill or refresh the column

A passage is Korean when Hangul syllables make up at least a quarter of the letters around the target: its line, and
the lines either side of it added in turn until they hold 80 letters (so a short line such as a reference card's
`dpkg ‑V [패키지...]` is judged with its neighbours, while a long line speaks for itself and a code block or a
reference list nearby does not outvote it). One syllable carries about as much as two or three Latin letters, so a
Korean paragraph that names many English terms (`R Commander의 파일(File) 메뉴`) still counts as Korean. On the seven
sets the shares fall apart clearly: English passages at most 0.2, Korean ones from 0.30 up, most above 0.4.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpora import CORPORA

from retriever.reading.documents import DOCUMENT_SUFFIXES, read_document
from retriever.reading.notes import normalise

HANGUL = re.compile(r"[\uac00-\ud7a3]")
LATIN = re.compile(r"[A-Za-z]")
LETTERS = 80  # letters the window around the target's line must hold
KOREAN_SHARE = 1 / 4
COLUMN = "text_lang"


@dataclass(frozen=True)
class Place:
    file: str
    line: int  # 0-based


def unspaced(text: str) -> str:
    return "".join(text.split())


def corpus_lines(folder: Path) -> dict[str, list[str]]:
    """Each file's lines as the index reads them: documents through retriever's own readers, notes as they are."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        suffix = path.suffix.lower()
        text = read_document(suffix, data) if suffix in DOCUMENT_SUFFIXES else data.decode("utf-8")
        files[str(path.relative_to(folder))] = normalise(text).splitlines()
    return files


def locate(files: dict[str, list[str]], target: str) -> Place | None:
    """The first line holding the target (spaces ignored, as eval compares), or a line that runs into the next."""
    wanted = unspaced(target)
    for span in (1, 2):
        for name, lines in files.items():
            for i in range(len(lines) - span + 1):
                if wanted in unspaced("".join(lines[i : i + span])):
                    return Place(name, i)
    return None


def language(lines: list[str], line: int) -> tuple[str, float]:
    """ko or en, and the Hangul share it was decided by."""
    low, high = line, line + 1
    while True:
        text = "\n".join(lines[low:high])
        hangul, latin = len(HANGUL.findall(text)), len(LATIN.findall(text))
        if hangul + latin >= LETTERS or (low == 0 and high >= len(lines)):
            break
        low, high = max(0, low - 1), min(len(lines), high + 1)
    share = hangul / (hangul + latin) if hangul + latin else 0.0
    return ("ko" if share >= KOREAN_SHARE else "en"), share


def passage_langs(folder: Path, queries_file: Path) -> list[tuple[dict[str, str], str, float]]:
    files = corpus_lines(folder)
    with queries_file.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    out = []
    for row in rows:
        place = locate(files, normalise(row["target"]))
        if place is None:
            raise SystemExit(f"{queries_file.name}: target not in the corpus: {row['target']!r}")
        out.append((row, *language(files[place.file], place.line)))
    return out


def write_column(queries_file: Path, langs: list[str]) -> None:
    """Appends or replaces the last column line by line, so every other byte of the file stays as it was."""
    lines = queries_file.read_text(encoding="utf-8").splitlines()
    if len(lines) != len(langs) + 1:
        raise SystemExit(f"{queries_file.name}: a field spans lines; cannot add a column line by line")
    has_column = lines[0].split("\t")[-1] == COLUMN
    keep = (lambda line: line.rsplit("\t", 1)[0]) if has_column else (lambda line: line)
    body = [f"{keep(lines[0])}\t{COLUMN}"] + [f"{keep(line)}\t{lang}" for line, lang in zip(lines[1:], langs)]
    queries_file.write_text("\n".join(body) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="fill the column instead of checking it")
    parser.add_argument("--corpora", default=None, help="comma-separated subset of: " + ", ".join(CORPORA))
    args = parser.parse_args()
    differences = 0
    for name in args.corpora.split(",") if args.corpora else CORPORA:
        folder, queries_file = CORPORA[name][0](), CORPORA[name][1]
        found = passage_langs(folder, queries_file)
        counts: dict[str, int] = {}
        for row, lang, share in found:
            direction = f"{row.get('lang', '-')}→{lang}"
            counts[direction] = counts.get(direction, 0) + 1
            if abs(share - KOREAN_SHARE) < 0.1:
                print(f"  {name}: near the line ({share:.2f} → {lang}): {row['target']}")
            if not args.write and row.get(COLUMN) != lang:
                differences += 1
                print(f"{name}: {row['target']!r} has {COLUMN}={row.get(COLUMN)!r}, its passage reads as {lang}")
        if args.write:
            write_column(queries_file, [lang for _, lang, _ in found])
        print(f"{name}: " + ", ".join(f"{d} {n}" for d, n in sorted(counts.items())))
    if differences:
        raise SystemExit(f"{differences} queries disagree with their passage's language")


if __name__ == "__main__":
    main()
