"""Chunking time for one-line notes of 250 KB and 1 MB in shapes with few or no spaces, beside ordinary spaced
sentences of the same size measured in the same run (the reference: what the chunker was built for).

    .venv/bin/python bench/unbroken.py
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable

from retriever.api import default_cache_dir
from retriever.encoders import DEFAULT_MODEL, load_encoder
from retriever.reading.chunking import ChunkerSettings, chunk_section, parts_of, split_sections
from retriever.reading.korean import kiwi
from retriever.reading.notes import Note

SHAPES: dict[str, Callable[[random.Random, int], str]] = {
    "spaced sentences (reference)": lambda rnd, n: " ".join(
        ["배치 사이즈는 메모리가 허락하는 만큼 키운다."] * (n // 60)
    ),
    "Korean without spaces": lambda rnd, n: "".join(chr(rnd.randrange(0xAC00, 0xD7A4)) for _ in range(n // 3)),
    "one syllable repeated": lambda rnd, n: "가" * (n // 3),
    "one letter repeated": lambda rnd, n: "a" * n,
    "base64": lambda rnd, n: base64.b64encode(rnd.randbytes(n * 3 // 4)).decode(),
    "minified script": lambda rnd, n: ("function f(a,b){return a.map(x=>x*b).filter(Boolean)};" * (n // 50 + 1))[:n],
    "table row": lambda rnd, n: "|" + "|".join(f" 셀{i} " for i in range(n // 8)) + "|",
}


def main() -> None:
    count = load_encoder(DEFAULT_MODEL, default_cache_dir()).count_tokens
    settings = ChunkerSettings()
    kiwi()  # loaded before the clock starts
    for size in (250_000, 1_000_000):
        reference = None
        for name, make in SHAPES.items():
            text = make(random.Random(0), size)
            started = time.perf_counter()
            chunks = parts = 0
            for section in split_sections(Note("x.md", text)):
                for row, chunk in enumerate(chunk_section(section, settings, count)):
                    chunks += 1
                    parts += len(parts_of(chunk, row, settings, count))
            seconds = time.perf_counter() - started
            reference = reference or seconds
            print(
                f"{len(text.encode()) / 1e6:5.2f} MB  {name:29} {seconds:6.2f} s  {seconds / reference:5.2f}×  "
                f"{chunks} chunks, {parts} parts",
                flush=True,
            )


if __name__ == "__main__":
    main()
