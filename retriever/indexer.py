"""Notes → chunks → vectors → a new index generation, re-embedding only what is new.

Vectors are keyed by content hash, not by file or position, so an unchanged, moved or renamed passage keeps its
vector, and only text the index has never seen under the same fingerprint costs a model forward pass.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from .chunking import Chunk, ChunkerSettings, chunk_section, split_sections
from .encoders import Encoder, Role
from .errors import RetrieverError
from .notes import NoteScan
from .store import COLLECTIONS, IndexStore, LoadedIndex, Manifest, fingerprint

Progress = Callable[[int, int], None]  # (done, total) embeddings
ROLES: dict[str, Role] = {"chunks": "passage", "questions": "query"}  # a heading is asked like a question


@dataclass(frozen=True)
class IndexReport:
    notes: int
    chunks: int
    added: int
    unchanged: int
    removed: int
    skipped: list[tuple[str, str]]
    seconds: float
    embedded: int  # forward passes actually run, chunks and headings together


def key_of(collection: str, item: Chunk) -> str:
    """Content address of what gets embedded: a chunk's text, or a section's heading for `similar`."""
    if collection == "chunks":
        return item.content_hash
    return hashlib.sha256(item.heading.encode("utf-8")).hexdigest()[:32]


def collect(scan: NoteScan, settings: ChunkerSettings, count: Callable[[str], int]) -> dict[str, list[Chunk]]:
    chunks: list[Chunk] = []
    questions: list[Chunk] = []
    for note in scan.notes:
        for section in split_sections(note):
            chunks += chunk_section(section, settings, count)
            if section.title:
                questions.append(
                    Chunk(section.path, section.headings, section.start_line, section.end_line, section.body)
                )
    return {"chunks": chunks, "questions": questions}


def reusable(old: LoadedIndex | None, fp: str) -> dict[str, dict[str, np.ndarray]]:
    """Old vectors by content key, but only if they were made under the same fingerprint."""
    if old is None or old.manifest.fingerprint != fp:
        return {name: {} for name in COLLECTIONS}
    return {
        name: {key_of(name, item): old.vectors[name][row] for row, item in enumerate(old.manifest.items(name))}
        for name in COLLECTIONS
    }


def build(
    scan: NoteScan,
    encoder: Encoder,
    settings: ChunkerSettings,
    store: IndexStore,
    old: LoadedIndex | None,
    reuse: bool = True,
    progress: Progress | None = None,
) -> IndexReport:
    """Write a new index generation for the scanned notes.

    old is the current index: its vectors are reused when `reuse` holds and its fingerprint matches, and the
    added/unchanged/removed counts always compare against its chunks, so --full still reports what changed.
    """
    started = time.perf_counter()
    if not scan.notes:
        raise RetrieverError("no notes to index: the folder has no readable .md or .txt files")
    items = collect(scan, settings, encoder.count_tokens)
    fp = fingerprint(encoder.spec, settings.as_dict())
    known = reusable(old if reuse else None, fp)
    todo = {
        name: sorted({key_of(name, item): item for item in items[name] if key_of(name, item) not in known[name]}.items())
        for name in COLLECTIONS
    }
    total, done = sum(len(v) for v in todo.values()), 0
    if progress:
        progress(0, total)
    for name in COLLECTIONS:
        texts = [item.embed_text if name == "chunks" else item.heading for _, item in todo[name]]

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, total)

        fresh = encoder.encode(texts, ROLES[name], advance) if texts else np.zeros((0, encoder.spec.dim), np.float32)
        known[name].update({key: fresh[i] for i, (key, _) in enumerate(todo[name])})
    vectors = {
        name: np.array([known[name][key_of(name, item)] for item in items[name]], dtype=np.float32).reshape(
            -1, encoder.spec.dim
        )
        for name in COLLECTIONS
    }
    seconds = time.perf_counter() - started
    manifest = Manifest(
        model=encoder.spec,
        chunker=settings.as_dict(),
        ann="",
        files=dict(scan.stamps),
        chunks=items["chunks"],
        questions=items["questions"],
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        build_seconds=seconds,
    )
    store.write(manifest, vectors)
    old_keys = {key_of("chunks", c) for c in old.manifest.chunks} if old else set()
    new_keys = [key_of("chunks", c) for c in items["chunks"]]
    unchanged = sum(1 for key in new_keys if key in old_keys)
    return IndexReport(
        notes=len(scan.notes),
        chunks=len(new_keys),
        added=len(new_keys) - unchanged,
        unchanged=unchanged,
        removed=len(old_keys - set(new_keys)),
        skipped=scan.skipped,
        seconds=time.perf_counter() - started,
        embedded=total,
    )
