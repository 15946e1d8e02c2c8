"""Indexing a large notes folder: wall time and peak memory of `retriever index` over N generated notes, then
the re-index after editing one of them.

    .venv/bin/python bench/many_notes.py [--notes 10000]

Notes are Q&A sections recombined from notes/ with a number each, so every text is distinct and embedding cannot
be skipped by content addressing.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from retriever.reading.chunking import split_sections
from retriever.reading.notes import scan_notes

REPO = Path(__file__).resolve().parent.parent


def generate(folder: Path, count: int) -> None:
    sections = [s for n in scan_notes(REPO / "notes").notes for s in split_sections(n)]
    bullets = [line for s in sections for line in s.body.split("\n") if line.strip()]
    rng = random.Random(0)
    for i in range(count):
        section = rng.choice(sections)
        body = "\n".join(rng.sample(bullets, 3))
        sub = folder / f"{i % 100:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"note-{i}.md").write_text(f"## {section.title} ({i})\n{body}\n- 메모 번호 {i}\n", encoding="utf-8")


def run(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one retriever process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "retriever", *args], check=True, capture_output=True)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, default=10_000)
    count = parser.parse_args().notes
    work = Path(tempfile.mkdtemp(prefix="retriever-many-"))
    notes, index = work / "notes", work / "index"
    notes.mkdir()
    generate(notes, count)
    wall, peak = run(["index", "--notes", str(notes), "--index", str(index)])
    print(f"{count} notes: full index {wall:.1f} s, peak RSS {peak:.0f} MiB")
    edited = notes / "00" / "note-0.md"
    edited.write_text(edited.read_text(encoding="utf-8") + "- 한 줄 추가\n", encoding="utf-8")
    wall, _ = run(["index", "--notes", str(notes), "--index", str(index)])
    print(f"re-index after editing one note: {wall:.1f} s (whole process, model load included)")
    wall, _ = run(["ask", "배치 사이즈는?", "--notes", str(notes), "--index", str(index), "--json", "--no-server"])
    print(f"cold ask over {count} notes: {wall:.1f} s")


if __name__ == "__main__":
    main()
