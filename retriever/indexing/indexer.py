"""Notes → chunks, parts and questions → vectors per model → a new index generation, embedding only what is new.

Vectors are keyed by the exact text a model saw, not by file or position, so an unchanged, moved or renamed
passage keeps its vector, and only text the index has never embedded under the same model costs a forward pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..encoders import Encoder, Spans, TokenEncoder, passes, span_encoder
from ..failpoints import failpoint, holdpoint
from ..index.generation import Generation, StoredIndex
from ..index.lexical import LexicalIndex
from ..index.manifest import COLLECTIONS, LEXICAL, SPANS, Manifest, matrix_name
from ..index.rowfile import RowReader, Rows, RowWriter, gather
from ..index.tokencodes import Codebook, int8_of, token_floats
from ..index.vectorfile import VectorWriter
from ..local.store import Check, IndexStore
from ..progress import EmbedProgress
from ..reading.chunk import Chunk, Part, content_hash, with_headings
from ..reading.chunker_settings import ChunkerSettings
from ..reading.chunking import chunk_section, parts_of, split_sections
from ..reading.notes import NoteScan
from ..timings import phase
from .checkpoint import FOLDER as CHECKPOINT
from .checkpoint import STEP, Checkpoint, Resumable

Progress = Callable[[EmbedProgress], None]
Advance = Callable[[int, int], None]  # (texts, characters) just embedded
Span = tuple[int, int, int]  # where a part's token vectors are: segment, first row, end row
Embedders = Callable[[int, Encoder, bool, Checkpoint], Resumable]  # (model row, encoder, keep tokens, checkpoint)


def local_passes(model: int, encoder: Encoder, tokens: bool, checkpoint: Checkpoint) -> Resumable:
    """A model's passes run here, by the encoder loaded in this process."""
    return Resumable(span_encoder(encoder), tokens, checkpoint)


@dataclass(frozen=True)
class IndexReport:
    notes: int
    chunks: int
    added: int
    unchanged: int
    removed: int
    skipped: list[tuple[str, str]]
    seconds: float
    embedded: int  # forward passes actually run, over all models: one per new chunk and model that pools its spans
    up_to_date: bool = False  # nothing to do: no model was loaded
    extracted: int = 0  # documents parsed (PDF, HTML, DOCX): new or changed since the extraction cache kept their text

    @classmethod
    def nothing_to_do(cls, scan: NoteScan, manifest: Manifest, started: float, up_to_date: bool = False) -> IndexReport:
        """The report of a build that found the index already holding these notes."""
        chunks = len(manifest.chunks)
        seconds = time.perf_counter() - started
        return cls(len(scan.notes), chunks, 0, chunks, 0, scan.skipped, seconds, 0, up_to_date, scan.extracted)

    def to_json(self) -> dict[str, Any]:
        """What `index --json` prints, and what a server that built for a client sends it: the same keys in the
        same order, skipped last."""
        return {k: v for k, v in vars(self).items() if k != "skipped"} | {"skipped": [list(s) for s in self.skipped]}


@dataclass
class Corpus:
    """Everything an index holds besides vectors. Each chunk is embedded once per model (its heading path in front);
    its parts' and its section heading's vectors are pooled from that same pass."""

    chunks: list[Chunk]
    parts: list[Part]
    questions: list[Chunk]
    chunk_question: list[int]

    def items(self) -> list[Spans]:
        """What each chunk's pass reads and pools: its parts, then its section's heading."""
        offsets = self.part_offsets()
        out = []
        for row, chunk in enumerate(self.chunks):
            head = with_headings(chunk.headings, "")
            lead = len(head) + 1 if head else 0
            spans = [(lead + p.start, lead + p.end) for p in self.parts[offsets[row] : offsets[row + 1]]]
            if chunk.heading:
                spans.append((len(head) - len(chunk.heading), len(head)))
            out.append(Spans(chunk.embed_text, tuple(spans), lead))
        return out

    def keys(self) -> dict[str, list[str]]:
        """Every row's key, per collection: a chunk's is its embedded text's hash; a part's or a heading's adds where
        in that text it is pooled from, since its vector depends on the whole chunk."""
        chunk_keys = [c.content_hash for c in self.chunks]
        return {
            "chunks": chunk_keys,
            "parts": [content_hash(f"{chunk_keys[p.chunk]}:{p.start}:{p.end}") for p in self.parts],
            "questions": [content_hash(f"{chunk_keys[row]}:heading") for row in self.first_chunks()],
        }

    def part_offsets(self) -> np.ndarray:
        """offsets[c]:offsets[c+1] are the parts of chunk c (parts are in chunk order)."""
        return np.searchsorted([p.chunk for p in self.parts], np.arange(len(self.chunks) + 1))

    def first_chunks(self) -> list[int]:
        """The chunk whose pass gives each question its vector: its section's first."""
        first = {q: row for row, q in reversed(list(enumerate(self.chunk_question))) if q >= 0}
        return [first[q] for q in range(len(self.questions))]

    @classmethod
    def of(cls, manifest: Manifest) -> Corpus:
        return cls(manifest.chunks, manifest.parts, manifest.questions, manifest.chunk_question)


def collect(
    scan: NoteScan, settings: ChunkerSettings, count: Callable[[str], int], old: Manifest | None = None
) -> Corpus:
    """Chunk every note; a note whose bytes the old index chunked under the same settings keeps its chunks
    without being chunked again (chunking counts model tokens and splits sentences: the bulk of a re-index). In a
    changed note, a chunk whose text the note had before keeps its parts, which depend on that text alone: cutting
    parts splits sentences with Kiwi, 80 % of chunking one edited Hecto note (0.11 of 0.14 s, cProfile)."""
    corpus = Corpus([], [], [], [])
    previous = NoteRows.of(old) if old is not None and old.chunker == settings.as_dict() else {}
    for note in scan.notes:
        rows = previous.get(note.path)
        if rows is not None and old is not None and old.files[note.path].sha256 == scan.stamps[note.path].sha256:
            rows.copy_into(corpus, old)
            continue
        cut = rows.part_spans(old) if rows is not None and old is not None else {}
        for section in split_sections(note):
            question = -1
            if section.question:
                question = len(corpus.questions)
                corpus.questions.append(Chunk(section.path, section.headings, section.start_line, section.end_line, ""))
            for chunk in chunk_section(section, settings, count):
                row = len(corpus.chunks)
                corpus.chunks.append(chunk)
                corpus.chunk_question.append(question)
                spans = cut.get(chunk.text)
                corpus.parts += (
                    parts_of(chunk, row, settings, count) if spans is None else [Part(row, a, b) for a, b in spans]
                )
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

    def part_spans(self, old: Manifest) -> dict[str, list[tuple[int, int]]]:
        """Each of the note's old chunk texts, with where its parts lie in it."""
        return {
            old.chunks[c].text: [(old.parts[p].start, old.parts[p].end) for p in self.parts.get(c, [])]
            for c in self.chunks
        }

    def copy_into(self, corpus: Corpus, old: Manifest) -> None:
        question_row = {q: len(corpus.questions) + i for i, q in enumerate(self.questions)}
        corpus.questions += [old.questions[q] for q in self.questions]
        for chunk in self.chunks:
            row = len(corpus.chunks)
            corpus.chunks.append(old.chunks[chunk])
            corpus.chunk_question.append(question_row.get(old.chunk_question[chunk], -1))
            corpus.parts += [replace(old.parts[p], chunk=row) for p in self.parts.get(chunk, [])]


WINDOW = 1024  # rows copied per step: memory stays flat however many notes there are (texts are embedded in
# checkpoint.STEP steps)


@dataclass
class Plan:
    """How one matrix (a model × a collection) of the new index is filled: rows the old index holds under the same
    key and model are copied from its file; the rest come from this build's passes."""

    encoder: Encoder
    model: int
    collection: str
    keys: list[str]  # key of every row, in corpus order
    old_rows: dict[str, int]  # key → row in the old matrix
    old: StoredIndex | None  # where old_rows point
    tokens: bool  # also write the part token vectors (primary model's parts)

    @property
    def name(self) -> str:
        return matrix_name(self.model, self.collection)


def plans_of(
    encoder: Encoder,
    model: int,
    keys: dict[str, list[str]],
    old: StoredIndex | None,
    old_keys: dict[str, dict[str, int]],
    tokens: bool,
) -> dict[str, Plan]:
    """old_keys: the old index's rows by key, per collection, valid for any model it holds."""
    reusable = old is not None and encoder.spec in old.manifest.models
    if reusable and tokens and (old.manifest.models.index(encoder.spec) != 0 or SPANS not in old.manifest.extras):  # type: ignore[union-attr]
        reusable = False  # reused parts need their token vectors too
    return {
        name: Plan(
            encoder,
            model,
            name,
            keys[name],
            old_keys[name] if reusable else {},
            old if reusable else None,
            tokens and name == "parts",
        )
        for name in COLLECTIONS
    }


def pending_chunks(corpus: Corpus, plans: dict[str, Plan]) -> list[int]:
    """Chunks to embed: any row of theirs (the chunk, a part, the heading it lends its section) is new to the
    model; of chunks whose pass gives the very same keys (a passage copied within the notes) only the first, since
    every row is found by its key. Longest first."""
    new = np.array([k not in plans["chunks"].old_rows for k in plans["chunks"].keys], dtype=bool)
    gives: list[list[str]] = [[key] for key in plans["chunks"].keys]
    for part, key in zip(corpus.parts, plans["parts"].keys):
        new[part.chunk] |= key not in plans["parts"].old_rows
        gives[part.chunk].append(key)
    for row, key in zip(corpus.first_chunks(), plans["questions"].keys):
        new[row] |= key not in plans["questions"].old_rows
        gives[row].append(f"question {key}")
    rows = list({tuple(gives[row]): row for row in reversed(np.flatnonzero(new).tolist())}.values())
    return sorted(rows, key=lambda r: (-len(corpus.chunks[r].embed_text), r))


Fresh = dict[str, dict[str, int]]  # collection → key → row in this build's scratch file


@dataclass(frozen=True)
class Layout:
    """Where each chunk's rows are, computed once per build for every model's pass."""

    items: list[Spans]  # what each chunk's pass reads and pools
    offsets: np.ndarray  # offsets[c]:offsets[c+1] are the parts of chunk c
    question_of: dict[int, int]  # chunk row → the question whose heading vector its pass gives

    @classmethod
    def of(cls, corpus: Corpus) -> Layout:
        return cls(corpus.items(), corpus.part_offsets(), {row: q for q, row in enumerate(corpus.first_chunks())})


def embed(
    model: Resumable,
    plans: dict[str, Plan],
    layout: Layout,
    rows: list[int],
    generation: Generation,
    advance: Advance,
) -> tuple[Fresh, dict[str, Span]]:
    """One pass per pending chunk (or its results kept by an interrupted build): its vector, its parts' and its
    heading's into scratch files, and (when kept) its parts' token vectors into a new segment of the generation,
    made at the first result: in int8, or as codes where the passes return codes (`Resumable.codes`, settled by
    then). Returns each key's scratch row, and the token rows of each fresh part in that segment."""
    dim = plans["chunks"].encoder.spec.dim
    writers = {c: RowWriter(generation.scratch / f"{plans[c].name}.npy", dim, durable=False) for c in COLLECTIONS}
    tokens: RowWriter | None = None
    items, offsets, question_of = layout.items, layout.offsets, layout.question_of
    fresh: Fresh = {c: {} for c in COLLECTIONS}
    spans: dict[str, Span] = {}
    windows = [rows[start : start + STEP] for start in range(0, len(rows), STEP)]
    steps = (([items[r] for r in window], [int(offsets[r + 1] - offsets[r]) for r in window]) for window in windows)
    results = model.embed_all(steps, lambda batch: counting(batch, advance))
    for window, pooled in zip(windows, results):
        chunk_rows, part_rows, heading_rows = [], [], []
        for row, result in zip(window, pooled):
            fresh["chunks"][plans["chunks"].keys[row]] = writers["chunks"].rows + len(chunk_rows)
            chunk_rows.append(result.whole)
            own = range(offsets[row], offsets[row + 1])
            for i, part in enumerate(own):
                key = plans["parts"].keys[part]
                fresh["parts"][key] = writers["parts"].rows + len(part_rows)
                part_rows.append(result.spans[i])
                if plans["parts"].tokens:
                    kept = result.tokens[i]
                    if tokens is None:
                        tokens = generation.segment(kept.shape[1], model.codes)
                        segment = len(generation.segments) - 1
                    spans[key] = (segment, tokens.rows, tokens.rows + len(kept))
                    tokens.append(kept)
            if row in question_of:
                fresh["questions"][plans["questions"].keys[question_of[row]]] = writers["questions"].rows + len(
                    heading_rows
                )
                heading_rows.append(result.spans[len(own)])
        for collection, vectors in (("chunks", chunk_rows), ("parts", part_rows), ("questions", heading_rows)):
            if vectors:
                writers[collection].append(np.stack(vectors).astype(np.float32))
    for writer in writers.values():
        writer.close()
    if tokens is not None:
        tokens.close()
    return fresh, spans


def copy_rows(out: VectorWriter, readers: Mapping[int, Rows], picks: Iterable[tuple[int, int, int]]) -> None:
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


def counting(batch: Sequence[Spans], advance: Advance) -> Callable[[int], None]:
    """Progress for texts finished in the order of batch: how many, and their characters."""
    done = iter(batch)

    def each(n: int) -> None:
        advance(n, sum(len(next(done).text) for _ in range(n)))

    return each


def assemble(plan: Plan, generation: Generation, fresh: dict[str, int], spans: dict[str, Span]) -> None:
    """Write the plan's matrix in corpus order from this build's scratch file and the old index's file."""
    old_rows, dim = plan.old_rows, plan.encoder.spec.dim
    readers: dict[int, Rows] = {0: RowReader(generation.scratch / f"{plan.name}.npy")}  # 0: this build's; 1: old
    if plan.old:
        readers[1] = plan.old.vectors(plan.name)
    generation.fresh[plan.name] = sum(1 for k in plan.keys if k in fresh)

    def source(key: str) -> tuple[int, int, int]:
        if key in fresh:
            return 0, fresh[key], fresh[key] + 1
        return 1, old_rows[key], old_rows[key] + 1

    copy_rows(generation.matrix(plan.name, dim), readers, map(source, plan.keys))
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
    """The live token rows of the old segments, decoded, into one new int8 segment (encoded with the rest)."""
    codebook = Codebook.load(old.path / f"{old.manifest.codebook}.npy") if old.manifest.codebook else None
    readers = {i: old.reader(old.manifest.segments[i]) for i in used}
    out = generation.segment(dim)
    for segment, start, stop in spans:
        out.append(int8_of(token_floats(readers[segment].read(start, stop), codebook)))
    out.close()
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
        and manifest.collections == scan.collections
        and {path: stamp.sha256 for path, stamp in scan.stamps.items()}
        == {path: stamp.sha256 for path, stamp in manifest.files.items()}
    )


def build(
    scan: NoteScan,
    encoders: Sequence[Encoder],
    settings: ChunkerSettings,
    store: IndexStore,
    old: StoredIndex | None,
    check: Check,
    reuse: bool = True,
    progress: Progress | None = None,
    passes_of: Embedders | None = None,
) -> IndexReport:
    """Write a new index generation for the scanned notes (at least one: the caller checks), streaming: memory holds the notes' text and metadata
    and one window of vectors, never a whole matrix.

    old is the current index: its vectors are reused when `reuse` holds and the model is the same, and the
    added/unchanged/removed counts always compare against its chunks, so --full still reports what changed.
    passes_of makes each model's passes: in this process by default, or sharded over a cluster (`ray_build`).
    check is asked of the written generation before it goes live (store.commit).
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
    keys = corpus.keys()
    late = isinstance(encoders[0], TokenEncoder)  # token vectors for re-ranking, where the model gives them
    previous = old if reuse else None
    old_keys = (
        {name: {k: row for row, k in enumerate(rows)} for name, rows in Corpus.of(previous.manifest).keys().items()}
        if previous
        else {c: {} for c in COLLECTIONS}
    )
    plans = [plans_of(encoder, m, keys, previous, old_keys, late and m == 0) for m, encoder in enumerate(encoders)]
    pending = [pending_chunks(corpus, each) for each in plans]
    layout = Layout.of(corpus)
    checkpoint = Checkpoint(store.root / CHECKPOINT)
    passes_of = passes_of or local_passes
    resumable = [passes_of(m, e, each["parts"].tokens, checkpoint) for m, (e, each) in enumerate(zip(encoders, plans))]
    if reuse:  # what an interrupted build embedded; --full embeds everything afresh
        kept = checkpoint.kept({r.key(layout.items[row]) for r, rows in zip(resumable, pending) for row in rows})
        for each_model in resumable:
            each_model.done = kept
    todo = [[row for row in rows if r.key(layout.items[row]) not in r.done] for r, rows in zip(resumable, pending)]
    # An update of one step's texts or fewer keeps no checkpoint: an interrupt loses no more than the step it
    # bounds, and its files (written, fsynced, removed at the commit) were 10 of the 42 fsyncs and 9 of the 43
    # unlinks of one edited Hecto note's update, which embeds 2 texts.
    checkpoint.keeping = sum(len(rows) for rows in todo) > STEP
    state = EmbedProgress(
        0,
        sum(len(rows) for rows in todo),
        0,
        sum(len(corpus.chunks[r].embed_text) for rows in todo for r in rows),
        len(corpus.chunks),
    )

    def advance(texts: int, chars: int) -> None:
        nonlocal state
        state = replace(state, texts=state.texts + texts, chars=state.chars + chars)
        failpoint("embedding")
        holdpoint("embedding")  # a test holds a server's update here to ask questions during it
        if progress:
            progress(state)

    if progress:
        progress(state)
    with store.building() as generation:
        for model, each, rows in zip(resumable, plans, pending):
            with phase("embed"):
                fresh, spans = embed(model, each, layout, rows, generation, advance)
            with phase("write vectors"):
                for name, matrix in each.items():
                    assemble(matrix, generation, fresh[name], spans)
        with phase("token codes"):
            generation.encode_segments(previous, encoders[0].spec)
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
            collections=scan.collections,
        )
        with phase("bm25"):
            same_kiwi = old is not None and reuse and old.manifest.chunker == settings.as_dict()
            known = (
                LexicalIndex.known_tokens(old.path / LEXICAL, [c.content_hash for c in old.manifest.chunks])  # type: ignore[union-attr]
                if same_kiwi
                else {}
            )
            lexical = LexicalIndex.build([c.embed_text for c in corpus.chunks], keys["chunks"], known)
        with phase("commit (ANN, checksums, manifest)"):
            store.commit(generation, manifest, lexical, check, previous)
    checkpoint.clear()  # its work is in the committed generation
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
        embedded=sum(passes(e, layout.items[r]) for e, rows in zip(encoders, todo) for r in rows),
        extracted=scan.extracted,
    )
