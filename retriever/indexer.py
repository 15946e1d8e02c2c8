"""Notes → chunks, parts and questions → vectors per model → a new index generation, embedding only what is new.

Vectors are keyed by the exact text a model saw, not by file or position, so an unchanged, moved or renamed
passage keeps its vector, and only text the index has never embedded under the same model costs a forward pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from .chunking import Chunk, ChunkerSettings, Part, chunk_section, content_hash, parts_of, split_sections, with_headings
from .encoders import Encoder, ModelSpec, Role
from .errors import RetrieverError
from .failpoints import failpoint
from .lexical import LexicalIndex
from .notes import NoteScan
from .ranking import OFFSETS, TOKENS
from .store import COLLECTIONS, IndexStore, LoadedIndex, Manifest, matrix_name

Progress = Callable[[int, int], None]  # (done, total) embeddings
ROLES: dict[str, Role] = {"chunks": "passage", "parts": "passage", "questions": "query"}  # a heading is asked


@dataclass(frozen=True)
class IndexReport:
    notes: int
    chunks: int
    added: int
    unchanged: int
    removed: int
    skipped: list[tuple[str, str]]
    seconds: float
    embedded: int  # forward passes actually run, over all models and collections


@dataclass
class Corpus:
    """Everything an index holds besides vectors, with the text each row is embedded from."""

    chunks: list[Chunk]
    parts: list[Part]
    questions: list[Chunk]
    chunk_question: list[int]

    def texts(self, collection: str) -> list[str]:
        if collection == "chunks":
            return [c.embed_text for c in self.chunks]
        if collection == "parts":
            return [with_headings(self.chunks[p.chunk].headings, p.text) for p in self.parts]
        return [q.heading for q in self.questions]

    @classmethod
    def of(cls, manifest: Manifest) -> Corpus:
        return cls(manifest.chunks, manifest.parts, manifest.questions, manifest.chunk_question)


def collect(scan: NoteScan, settings: ChunkerSettings, count: Callable[[str], int]) -> Corpus:
    corpus = Corpus([], [], [], [])
    for note in scan.notes:
        for section in split_sections(note):
            question = -1
            if section.title:
                question = len(corpus.questions)
                corpus.questions.append(
                    Chunk(section.path, section.headings, section.start_line, section.end_line, section.body)
                )
            for chunk in chunk_section(section, settings, count):
                row = len(corpus.chunks)
                corpus.chunks.append(chunk)
                corpus.chunk_question.append(question)
                corpus.parts += [Part(row, text) for text in parts_of(chunk, settings, count)]
    return corpus


def known_vectors(old: LoadedIndex | None, spec: ModelSpec) -> dict[str, dict[str, np.ndarray]]:
    """Vectors the old index holds for exactly this model (same weights, same prompts), by text hash."""
    known: dict[str, dict[str, np.ndarray]] = {name: {} for name in COLLECTIONS}
    if old is None or spec not in old.manifest.models:
        return known
    model = old.manifest.models.index(spec)
    corpus = Corpus.of(old.manifest)
    for name in COLLECTIONS:
        matrix = old.vectors[matrix_name(model, name)]
        known[name] = {content_hash(text): matrix[row] for row, text in enumerate(corpus.texts(name))}
    return known


def known_tokens(old: LoadedIndex | None, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Token vectors of parts the old index holds under the same primary model, by text hash."""
    if old is None or old.manifest.model != spec or TOKENS not in old.extras:
        return {}
    tokens, offsets = old.extras[TOKENS], old.extras[OFFSETS]
    parts = Corpus.of(old.manifest).texts("parts")
    return {content_hash(t): tokens[offsets[i] : offsets[i + 1]] for i, t in enumerate(parts)}


def part_tokens(
    encoder: Encoder,
    texts: list[str],
    keys: list[str],
    known: dict[str, np.ndarray],
    vectors: dict[str, np.ndarray],
    advance: Progress,
) -> dict[str, np.ndarray]:
    """Embed new parts once for both their vector and their token vectors; returns the two extra arrays."""
    pending = sorted({k: t for k, t in zip(keys, texts) if k not in known}.items())
    if pending:
        fresh, tokens = encoder.encode_with_tokens([t for _, t in pending], "passage", advance)  # type: ignore[attr-defined]
        for i, (key, _) in enumerate(pending):
            vectors[key], known[key] = fresh[i], tokens[i]
    rows = [known[k] for k in keys]
    offsets = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    stacked = np.concatenate(rows) if rows else np.zeros((0, encoder.spec.dim), np.float16)
    return {TOKENS: np.asarray(stacked, dtype=np.float16), OFFSETS: offsets}  # no copy: already float16


def build(
    scan: NoteScan,
    encoders: Sequence[Encoder],
    settings: ChunkerSettings,
    store: IndexStore,
    old: LoadedIndex | None,
    reuse: bool = True,
    progress: Progress | None = None,
) -> IndexReport:
    """Write a new index generation for the scanned notes.

    old is the current index: its vectors are reused when `reuse` holds and the model is the same, and the
    added/unchanged/removed counts always compare against its chunks, so --full still reports what changed.
    """
    started = time.perf_counter()
    if not scan.notes:
        raise RetrieverError("no notes to index: the folder has no readable .md or .txt files")
    corpus = collect(scan, settings, encoders[0].count_tokens)
    texts = {name: corpus.texts(name) for name in COLLECTIONS}
    keys = {name: [content_hash(t) for t in texts[name]] for name in COLLECTIONS}  # hashed once, used thrice
    known = [known_vectors(old if reuse else None, encoder.spec) for encoder in encoders]
    late = hasattr(encoders[0], "encode_with_tokens")  # token vectors for re-ranking, where the model gives them
    tokens_known = known_tokens(old if reuse else None, encoders[0].spec) if late else {}
    if late:  # parts without stored token vectors go through the token-giving forward pass instead
        known[0]["parts"] = {k: v for k, v in known[0]["parts"].items() if k in tokens_known}
    todo = [
        {
            name: sorted({k: t for k, t in zip(keys[name], texts[name]) if k not in have[name]}.items())
            for name in COLLECTIONS
        }
        for have in known
    ]
    total, done = sum(len(v) for per_model in todo for v in per_model.values()), 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        failpoint("embedding")
        if progress:
            progress(done, total)

    if progress:
        progress(0, total)
    vectors: dict[str, np.ndarray] = {}
    extras = (
        part_tokens(encoders[0], texts["parts"], keys["parts"], tokens_known, known[0]["parts"], advance)
        if late
        else {}
    )
    for m, encoder in enumerate(encoders):
        for name in COLLECTIONS:
            pending = [] if late and (m, name) == (0, "parts") else todo[m][name]
            if pending:
                fresh = encoder.encode([t for _, t in pending], ROLES[name], advance)
                known[m][name].update({key: fresh[i] for i, (key, _) in enumerate(pending)})
            rows = [known[m][name][k] for k in keys[name]]
            vectors[matrix_name(m, name)] = np.array(rows, dtype=np.float32).reshape(-1, encoder.spec.dim)
    manifest = Manifest(
        models=[e.spec for e in encoders],
        chunker=settings.as_dict(),
        ann="",
        files=dict(scan.stamps),
        chunks=corpus.chunks,
        parts=corpus.parts,
        questions=corpus.questions,
        chunk_question=corpus.chunk_question,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        build_seconds=time.perf_counter() - started,
    )
    store.write(manifest, vectors, LexicalIndex.build(texts["chunks"]), extras)
    old_keys = {c.content_hash for c in old.manifest.chunks} if old else set()
    new_keys = keys["chunks"]  # a chunk's content hash is that of its embedded text
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
