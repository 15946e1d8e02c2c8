"""Notes → chunks, parts and questions → vectors per model → a new index generation, embedding only what is new.

Vectors are keyed by the exact text a model saw, not by file or position, so an unchanged, moved or renamed
passage keeps its vector, and only text the index has never embedded under the same model costs a forward pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from .chunking import Chunk, ChunkerSettings, Part, chunk_section, content_hash, parts_of, split_sections, with_headings
from .encoders import Encoder, Role
from .failpoints import failpoint
from .lexical import LexicalIndex
from .notes import NoteScan
from .progress import EmbedProgress
from .rowfile import RowReader, RowWriter, gather
from .store import (
    COLLECTIONS,
    LEXICAL,
    SPANS,
    Generation,
    IndexStore,
    Manifest,
    StoredIndex,
    matrix_name,
    token_bytes,
)
from .timings import phase

Progress = Callable[[EmbedProgress], None]
Advance = Callable[[int, int], None]  # (texts, characters) just embedded
Span = tuple[int, int, int]  # where a part's token vectors are: segment, first row, end row
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
    up_to_date: bool = False  # nothing to do: no model was loaded

    @classmethod
    def nothing_to_do(cls, scan: NoteScan, manifest: Manifest, started: float, up_to_date: bool = False) -> IndexReport:
        """The report of a build that found the index already holding these notes."""
        chunks = len(manifest.chunks)
        seconds = time.perf_counter() - started
        return cls(len(scan.notes), chunks, 0, chunks, 0, scan.skipped, seconds, 0, up_to_date)


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


def collect(
    scan: NoteScan, settings: ChunkerSettings, count: Callable[[str], int], old: Manifest | None = None
) -> Corpus:
    """Chunk every note; a note whose bytes the old index chunked under the same settings keeps its chunks
    without being chunked again (chunking counts model tokens and splits sentences: the bulk of a re-index)."""
    corpus = Corpus([], [], [], [])
    previous = NoteRows.of(old) if old is not None and old.chunker == settings.as_dict() else {}
    for note in scan.notes:
        rows = previous.get(note.path)
        if rows is not None and old is not None and old.files[note.path].sha256 == scan.stamps[note.path].sha256:
            rows.copy_into(corpus, old)
            continue
        for section in split_sections(note):
            question = -1
            if section.question:
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


@dataclass
class NoteRows:
    """Where one note's rows sit in an old manifest."""

    chunks: list[int] = field(default_factory=list)
    questions: list[int] = field(default_factory=list)
    parts: dict[int, list[int]] = field(default_factory=dict)  # chunk row → its part rows

    @staticmethod
    def of(manifest: Manifest) -> dict[str, NoteRows]:
        notes: dict[str, NoteRows] = {}
        for row, chunk in enumerate(manifest.chunks):
            notes.setdefault(chunk.path, NoteRows()).chunks.append(row)
        for row, question in enumerate(manifest.questions):
            notes.setdefault(question.path, NoteRows()).questions.append(row)
        for row, part in enumerate(manifest.parts):
            notes[manifest.chunks[part.chunk].path].parts.setdefault(part.chunk, []).append(row)
        return notes

    def copy_into(self, corpus: Corpus, old: Manifest) -> None:
        question_row = {q: len(corpus.questions) + i for i, q in enumerate(self.questions)}
        corpus.questions += [old.questions[q] for q in self.questions]
        for chunk in self.chunks:
            row = len(corpus.chunks)
            corpus.chunks.append(old.chunks[chunk])
            corpus.chunk_question.append(question_row.get(old.chunk_question[chunk], -1))
            corpus.parts += [Part(row, old.parts[p].text) for p in self.parts.get(chunk, [])]


# Vectors are kept in float16: half the disk and page cache of float32, for scores that move by ~1e-4 (the IVF
# indexes above 20 000 rows hold float16 codes anyway).
STORED = np.float16
WINDOW = 1024  # texts embedded, and rows copied, per step: enough to sort into evenly padded batches, few enough
# that memory stays flat however many notes there are


@dataclass
class Plan:
    """How one matrix (a model × a collection) of the new index is filled: rows the old index holds for the same
    text under the same model are copied from its file; the rest are embedded once each, longest first."""

    encoder: Encoder
    model: int
    collection: str
    keys: list[str]  # text hash of every row, in corpus order
    old_rows: dict[str, int]  # text hash → row in the old matrix
    old: StoredIndex | None  # where old_rows point
    pending: list[tuple[str, str]]  # (hash, text) to embed, unique, longest first
    tokens: bool  # also write the part token vectors (primary model's parts)
    lender: Plan | None = None  # a plan of the same model and role embedding some of the same texts
    lent: frozenset[str] = frozenset()  # hashes whose vectors come from the lender's fresh rows

    @property
    def name(self) -> str:
        return matrix_name(self.model, self.collection)


def plan(
    encoder: Encoder,
    model: int,
    collection: str,
    texts: list[str],
    keys: list[str],
    old: StoredIndex | None,
    old_texts: dict[str, int],
    tokens: bool,
    lender: Plan | None = None,
) -> Plan:
    """old_texts: the old index's rows of this collection by text hash, valid for any model it holds. A text the
    lender embeds anyway is taken from it, not embedded twice: a chunk that is a single part (a one-bullet
    answer, a one-line note cut into pieces) is the very same text as that part."""
    old_model = old.manifest.models.index(encoder.spec) if old and encoder.spec in old.manifest.models else None
    if tokens and (old_model != 0 or SPANS not in old.manifest.extras):  # type: ignore[union-attr]
        old_model = None  # reused parts need their token vectors too
    old_rows = old_texts if old_model is not None else {}
    pending = {k: t for k, t in zip(keys, texts) if k not in old_rows}
    lent = frozenset(pending.keys() & {k for k, _ in lender.pending}) if lender else frozenset()
    ordered = sorted(((k, t) for k, t in pending.items() if k not in lent), key=lambda item: -len(item[1]))
    return Plan(encoder, model, collection, keys, old_rows, old if old_rows else None, ordered, tokens, lender, lent)


def embed(plan: Plan, generation: Generation, advance: Advance) -> tuple[dict[str, int], dict[str, Span]]:
    """Embed the plan's pending texts: vectors into a scratch file, token vectors (when kept) into a new segment
    of the generation. Returns each hash's scratch row, and its token rows in that segment."""
    dim, role = plan.encoder.spec.dim, ROLES[plan.collection]
    vectors = RowWriter(generation.scratch / f"{plan.name}.npy", dim)
    tokens = generation.segment(dim) if plan.tokens and plan.pending else None
    rows: dict[str, int] = {}
    spans: dict[str, Span] = {}
    segment = len(generation.segments) - 1  # the one tokens writes, if any
    for start in range(0, len(plan.pending), WINDOW):
        window = plan.pending[start : start + WINDOW]
        batch = [text for _, text in window]
        finished = 0

        def done(n: int, batch: list[str] = batch) -> None:
            """Batches finish in the order of the window, which is already sorted as the encoder sorts."""
            nonlocal finished
            advance(n, sum(len(t) for t in batch[finished : finished + n]))
            finished += n

        if tokens is None:
            vectors.append(plan.encoder.encode(batch, role, done))
        else:
            fresh, per_text = plan.encoder.encode_with_tokens(batch, role, done)  # type: ignore[attr-defined]
            vectors.append(fresh)
            for (key, _), token_rows in zip(window, per_text):
                spans[key] = (segment, tokens.rows, tokens.rows + len(token_rows))
                tokens.append(token_bytes(token_rows))
        rows.update({key: start + i for i, (key, _) in enumerate(window)})
    vectors.close()
    if tokens is not None:
        tokens.close()
    return rows, spans


def copy_rows(out: RowWriter, readers: Mapping[int, RowReader], picks: Iterable[tuple[int, int, int]]) -> None:
    """Append rows [start, stop) of readers[source] for each pick, a window at a time."""
    window: list[tuple[int, int, int]] = []
    for pick in picks:
        window.append(pick)
        if len(window) == WINDOW:
            out.append(gather(readers, window, out.dim, out.dtype))
            window = []
    if window:
        out.append(gather(readers, window, out.dim, out.dtype))
    out.close()


def assemble(
    plan: Plan, generation: Generation, fresh: dict[str, int], spans: dict[str, Span], lent: dict[str, int]
) -> None:
    """Write the plan's matrix in corpus order from this build's scratch file, the lender's (lent: its fresh rows)
    and the old index's file."""
    old_rows, dim = plan.old_rows, plan.encoder.spec.dim
    readers = {0: RowReader(generation.scratch / f"{plan.name}.npy")}  # 0: this build's; 1: the old index's
    if plan.old:
        readers[1] = plan.old.reader(plan.name)
    if plan.lender and plan.lent:
        readers[2] = RowReader(generation.scratch / f"{plan.lender.name}.npy")  # 2: the lender's
    generation.fresh[plan.name] = sum(1 for k in plan.keys if k in fresh or k in plan.lent)

    def source(key: str) -> tuple[int, int, int]:
        if key in fresh:
            return 0, fresh[key], fresh[key] + 1
        if key in plan.lent:
            return 2, lent[key], lent[key] + 1
        return 1, old_rows[key], old_rows[key] + 1

    copy_rows(generation.matrix(plan.name, dim, STORED), readers, map(source, plan.keys))
    for reader in readers.values():
        reader.close()
    if plan.tokens:
        token_spans(plan, generation, spans)


def token_spans(plan: Plan, generation: Generation, fresh: dict[str, Span]) -> None:
    """Where each part's token vectors are: fresh ones in this build's segment, old ones in the old segments,
    which are linked rather than copied. Once over half of those segments' rows belong to parts that are gone,
    the live rows are copied into one new segment instead, so dead rows never pile up."""
    old, reused = plan.old, []
    if old is not None:
        old_spans = np.load(old.path / f"{SPANS}.npy", allow_pickle=False)
        reused = [tuple(int(v) for v in old_spans[plan.old_rows[k]]) for k in plan.keys if k not in fresh]
    used = sorted({segment for segment, _, _ in reused})
    if old is not None and used and segment_rows(old, used) > 2 * sum(b - a for _, a, b in reused):
        reused = compact(old, generation, reused, used, plan.encoder.spec.dim)
    elif old is not None:
        where = {}
        for i in used:
            generation.link(old, old.manifest.segments[i])
            where[i] = len(generation.segments) - 1
        reused = [(where[segment], a, b) for segment, a, b in reused]
    rest = iter(reused)
    spans = [fresh[k] if k in fresh else next(rest) for k in plan.keys]
    generation.array(SPANS, np.asarray(spans, dtype=np.int64).reshape(-1, 3))


def segment_rows(old: StoredIndex, used: list[int]) -> int:
    total = 0
    for i in used:
        reader = old.reader(old.manifest.segments[i])
        total += reader.rows
        reader.close()
    return total


def compact(old: StoredIndex, generation: Generation, spans: list[Span], used: list[int], dim: int) -> list[Span]:
    readers = {i: old.reader(old.manifest.segments[i]) for i in used}
    copy_rows(generation.segment(dim), readers, spans)
    for reader in readers.values():
        reader.close()
    segment = len(generation.segments) - 1
    ends = np.cumsum([b - a for _, a, b in spans]).tolist()
    return [(segment, end - (b - a), end) for end, (_, a, b) in zip(ends, spans)]


def holds(manifest: Manifest, scan: NoteScan, models: Sequence[str], settings: ChunkerSettings) -> bool:
    """Whether an index already is what a build of these notes would write: same notes byte for byte, models (by
    name: asked before any model is loaded) and chunk settings. Then a build writes nothing (at 10 000 notes it
    would take seconds to rewrite the same index)."""
    return (
        manifest.chunker == settings.as_dict()
        and [m.name for m in manifest.models] == list(models)
        and {path: stamp.sha256 for path, stamp in scan.stamps.items()}
        == {path: stamp.sha256 for path, stamp in manifest.files.items()}
    )


def build(
    scan: NoteScan,
    encoders: Sequence[Encoder],
    settings: ChunkerSettings,
    store: IndexStore,
    old: StoredIndex | None,
    reuse: bool = True,
    progress: Progress | None = None,
) -> IndexReport:
    """Write a new index generation for the scanned notes (at least one: the caller checks), streaming: memory holds the notes' text and metadata
    and one window of vectors, never a whole matrix.

    old is the current index: its vectors are reused when `reuse` holds and the model is the same, and the
    added/unchanged/removed counts always compare against its chunks, so --full still reports what changed.
    """
    started = time.perf_counter()
    specs = [e.spec for e in encoders]
    if (
        reuse
        and old is not None
        and holds(old.manifest, scan, [m.name for m in specs], settings)
        and (old.manifest.models == specs)
    ):
        return IndexReport.nothing_to_do(scan, old.manifest, started)
    with phase("chunk"):
        corpus = collect(scan, settings, encoders[0].count_tokens, old.manifest if old and reuse else None)
    texts = {name: corpus.texts(name) for name in COLLECTIONS}
    keys = {name: [content_hash(t) for t in texts[name]] for name in COLLECTIONS}  # hashed once, used thrice
    late = hasattr(encoders[0], "encode_with_tokens")  # token vectors for re-ranking, where the model gives them
    previous = old if reuse else None
    old_texts = {  # hashed once per collection, shared by every model's plan
        name: {content_hash(t): row for row, t in enumerate(Corpus.of(previous.manifest).texts(name))}
        if previous
        else {}
        for name in COLLECTIONS
    }
    plans: list[Plan] = []
    for m, encoder in enumerate(encoders):

        def of(name: str, lender: Plan | None = None, m: int = m, encoder: Encoder = encoder) -> Plan:
            tokens = late and (m, name) == (0, "parts")
            return plan(encoder, m, name, texts[name], keys[name], previous, old_texts[name], tokens, lender)

        parts = of("parts")  # first: chunks that are a single part take its vectors
        plans += [parts, of("chunks", parts), of("questions")]
    state = EmbedProgress(
        0, sum(len(p.pending) for p in plans), 0, sum(len(t) for p in plans for _, t in p.pending), len(corpus.chunks)
    )

    def advance(texts: int, chars: int) -> None:
        nonlocal state
        state = replace(state, texts=state.texts + texts, chars=state.chars + chars)
        failpoint("embedding")
        if progress:
            progress(state)

    if progress:
        progress(state)
    with store.building() as generation:
        embedded: dict[str, dict[str, int]] = {}  # matrix → its fresh rows by text hash, for plans that borrow
        for each in plans:
            with phase("embed"):
                fresh, spans = embed(each, generation, advance)
            embedded[each.name] = fresh
            with phase("write vectors"):
                assemble(each, generation, fresh, spans, embedded[each.lender.name] if each.lender else {})
        manifest = Manifest(
            models=[e.spec for e in encoders],
            chunker=settings.as_dict(),
            ann={},
            files=dict(scan.stamps),
            chunks=corpus.chunks,
            parts=corpus.parts,
            questions=corpus.questions,
            chunk_question=corpus.chunk_question,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            build_seconds=time.perf_counter() - started,
        )
        with phase("bm25"):
            same_kiwi = old is not None and reuse and old.manifest.chunker == settings.as_dict()
            known = LexicalIndex.known_tokens(old.path / LEXICAL) if same_kiwi else {}  # type: ignore[union-attr]
            lexical = LexicalIndex.build(texts["chunks"], keys["chunks"], known)
        with phase("commit (ANN, checksums, manifest)"):
            store.commit(generation, manifest, lexical, previous)
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
        embedded=state.total_texts,
    )
