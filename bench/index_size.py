"""What an index holds, file kind by file kind, against the text it indexes; and how long it takes to load.

    .venv/bin/python bench/index_size.py WORK [WORK ...] [--code DIR ...] [--rounds 3]

Each WORK is a folder of `bench/quality.py --work WORK`: the corpora beside their indexes (`<corpus>-index`).
Prints, per corpus and WORK, the bytes of each kind of stored file, the index ÷ the notes' files and ÷ their text
(as read: a PDF's or an HTML page's extracted text), and the time a fresh process takes to load the index
(`IndexStore.load`, every file checked) and then to make the tables its first question reads (each chunk's
language, boilerplate rows, part offsets). `--code` gives the retriever checkout each WORK was built by (its
PYTHONPATH), so indexes of two versions load in the same run, alternating, each with its own code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from retriever.reading.notes import scan_notes

REPO = Path(__file__).resolve().parent.parent
KINDS = (  # (kind, test on a generation's file name), first match wins
    ("token codes", lambda n: n.startswith("tokens-")),
    ("codebook", lambda n: n.startswith("codebook-")),
    ("part vectors", lambda n: n.startswith("m") and ".parts." in n and "token_spans" not in n),
    ("chunk vectors", lambda n: ".chunks." in n and n.startswith("m") and not n.startswith("meta")),
    ("question vectors", lambda n: ".questions." in n and n.startswith("m") and not n.startswith("meta")),
    ("token spans", lambda n: "token_spans" in n),
    ("manifest", lambda n: n.startswith(("manifest", "meta."))),
    ("bm25", lambda n: n.startswith("bm25/")),
)
LOAD = """
import json, sys, time
import bm25s, faiss  # imported by any load, not timed
from retriever.local.store import IndexStore
from retriever.search.ranking import boilerplate, chunk_korean
imported = time.perf_counter()
loaded = IndexStore(__import__("pathlib").Path(sys.argv[1])).load()
done = time.perf_counter()
loaded.derived(chunk_korean), loaded.derived(boilerplate), loaded.part_offsets
tables = time.perf_counter()
print(json.dumps({"load_ms": (done - imported) * 1000, "tables_ms": (tables - done) * 1000}))
"""


def composition(index: Path) -> dict[str, int]:
    generation = index / (index / "CURRENT").read_text().strip()
    sizes: dict[str, int] = defaultdict(int)
    for path in generation.rglob("*"):
        if path.is_file():
            name = path.relative_to(generation).as_posix()
            sizes[next((kind for kind, test in KINDS if test(name)), "other")] += path.stat().st_size
    return dict(sizes)


def load_time(index: Path, code: Path) -> dict[str, float]:
    """A fresh process's load of the index by the retriever at code (its own imports not counted)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    command = [sys.executable, "-c", LOAD, str(index.resolve())]  # run in code: "-c" puts the working folder first
    out = subprocess.run(command, env=env, cwd=code, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work", type=Path, nargs="+")
    parser.add_argument("--code", type=Path, nargs="*", default=None, help="retriever checkout of each WORK")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpora", default=None, help="comma-separated; every `<corpus>-index` of the first WORK")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    codes = args.code or [REPO] * len(args.work)
    corpora = args.corpora.split(",") if args.corpora else sorted(p.name[:-6] for p in args.work[0].glob("*-index"))
    rows: dict[str, dict[str, object]] = {}
    for corpus in corpora:
        notes = args.work[0] / corpus
        files = sum(p.stat().st_size for p in notes.rglob("*") if p.is_file())
        text = sum(len(note.text.encode("utf-8")) for note in scan_notes(notes).notes)
        times: dict[str, list[dict[str, float]]] = defaultdict(list)
        for _ in range(args.rounds):  # alternating, so the machine's load falls on each alike
            for work, code in zip(args.work, codes):
                times[str(work)].append(load_time(work / f"{corpus}-index", code))
        for work in args.work:
            sizes = composition(work / f"{corpus}-index")
            total = sum(sizes.values())
            rows[f"{corpus} {work.name}"] = {
                "files": files,
                "text": text,
                "index": total,
                "index_vs_files": round(total / files, 1),
                "index_vs_text": round(total / text, 1),
                "per_text": {kind: round(size / text, 2) for kind, size in sorted(sizes.items())},
                "load_ms": round(statistics.median(t["load_ms"] for t in times[str(work)]), 1),
                "tables_ms": round(statistics.median(t["tables_ms"] for t in times[str(work)]), 1),
            }
    kinds = [kind for kind, _ in KINDS] + ["other"]
    print(
        f"{'corpus':<20}{'files':>9}{'text':>9}{'index':>10}{'÷files':>8}{'÷text':>7}{'load ms':>9}{'tables':>8}  "
        + "  ".join(kinds)
        + "  (each ÷ text)"
    )
    for name, row in rows.items():
        per = row["per_text"]
        print(
            f"{name:<20}{row['files']:>9}{row['text']:>9}{row['index']:>10}{row['index_vs_files']:>8}"
            f"{row['index_vs_text']:>7}{row['load_ms']:>9}{row['tables_ms']:>8}  "
            + "  ".join(f"{per.get(kind, 0):.2f}" for kind in kinds)  # type: ignore[union-attr]
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
