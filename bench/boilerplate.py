"""What the boilerplate rule (retriever/search/boilerplate.py) keeps out of answers on each dev corpus and on Debian's HTML
help folders: how many chunks, and every distinct one, so that nothing real is seen to go.

Chunks are cut as a build cuts them, with the token count approximated by words (no model is loaded): boundaries
move a little, which sections recur does not.

    python bench/boilerplate.py [corpus ...]
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpora import CORPORA
from bench.html_extraction import unpacked
from retriever.reading.chunking import ChunkerSettings, chunk_section, split_sections
from retriever.reading.notes import scan_notes
from retriever.search.boilerplate import boilerplate_rows, recurring_key

FOLDERS = {
    **{name: make for name, (make, _) in CORPORA.items()},
    "libreoffice-help-ko": lambda: unpacked("libreoffice-help-ko") / "usr/share/libreoffice/help/ko",
    "libreoffice-help-en-us": lambda: unpacked("libreoffice-help-en-us") / "usr/share/libreoffice/help/en-US",
    "debian-faq-ko": lambda: unpacked("debian-faq-ko") / "usr/share/doc/debian/FAQ/ko",
    "debian-faq": lambda: unpacked("debian-faq") / "usr/share/doc/debian/FAQ",
}


def main() -> None:
    names = sys.argv[1:] or list(FOLDERS)
    settings = ChunkerSettings()
    for name in names:
        scan = scan_notes(FOLDERS[name]())
        chunks = [c for note in scan.notes for s in split_sections(note) for c in chunk_section(s, settings, words)]
        hidden = boilerplate_rows(chunks)
        kinds = Counter(recurring_key(chunks[row]) for row in hidden)
        print(f"{name}: {len(scan.notes)} notes, {len(chunks)} chunks, {len(hidden)} kept out ({len(kinds)} distinct)")
        for (suffix, heading, text), count in kinds.most_common():
            print(f"    {count:5d} × {suffix} {heading!r}: {text[:100]!r}")
        kept = Counter(recurring_key(chunk) for chunk in chunks) - kinds
        for (suffix, heading, text), count in kept.most_common(3):
            if count > 1:
                print(f"    kept, repeated {count} times: {suffix} {heading!r}: {text[:90]!r}")


def words(text: str) -> int:
    return len(text.split())


if __name__ == "__main__":
    main()
