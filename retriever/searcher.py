"""The half of a Retriever that answers: the live index loaded once per generation, a question encoded and
ranked within its filters, and reads of passages and notes by id. A sibling of the build half (builder.py) over the
state both share (state.py): a question that needs a build asks for it through that state."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from .encoders import Encoder, load_query_encoder, short_name
from .errors import RetrieverError, StaleRead
from .index.lexical import highlights, recent_tokens
from .index.manifest import Manifest
from .index.view import IndexView
from .reading.chunk import Chunk
from .reading.extraction_cache import ExtractionCache
from .reading.korean import kiwi
from .reading.notes import normalise, read_note
from .search.filters import Filters, NoteTable
from .search.question import clip_for, read_question, valid_k, valid_text
from .search.ranking import MODES, Mode, Query, Ranked, RankSettings, asks_questions, rank, rank_questions
from .search.results import Hit, QuestionHit
from .state import RetrieverState, paused_gc
from .timings import phase

H = TypeVar("H", bound=Hit)


def hits_of(ranked: Ranked, chunks: list[Chunk], k: int, rows: Sequence[int] | None = None) -> list[Hit]:
    """The first k as hits; rows: the chunks to show, when the ranked rows are not chunk rows."""
    shown = ranked.rows if rows is None else rows
    return [
        Hit.of(i + 1, float(score), chunks[int(row)], ranked.explain[i] if ranked.explain else None)
        for i, (row, score) in enumerate(zip(shown[:k], ranked.scores[:k]))
    ]


def lit(hits: list[H], query: Query, settings: RankSettings) -> list[H]:
    """Each hit with the spans of its text that are words of the question. Not for a dense-only question: Kiwi
    finds the words, and such a question would otherwise never wait the second it takes to load."""
    if settings.mode == "dense":
        return hits
    wanted = {form for form, _, _ in recent_tokens(query.text)}  # once for all the hits; BM25 has read it already
    return [replace(hit, highlights=highlights(hit.text, wanted)) for hit in hits]


def closest_sections(
    ranked: Ranked, chunks: list[Chunk], k: int, above: Sequence[QuestionHit] = ()
) -> list[QuestionHit]:
    """`similar` where the notes ask no questions (journals, documentation, laws): the sections closest by heading
    and passage, which is what `ask` ranks, each once at its best chunk and named by its heading path (else its
    note), in place of the question a Q&A note would have. After the questions `above` (fewer than k), the other
    sections fill the k places, scored below the last of them."""
    seen = {(hit.path, hit.headings) for hit in above}
    found: list[QuestionHit] = list(above)
    for hit in hits_of(ranked, chunks, len(ranked.rows)):
        if len(found) == k:
            break
        section = (hit.path, hit.headings)
        if section not in seen:
            seen.add(section)
            title = " > ".join(h for h in hit.headings if h) or hit.path
            found.append(QuestionHit.asking(replace(hit, rank=len(found) + 1), title))
    if above and len(found) > len(above):  # each keeps its distance from the next, all below the questions
        shift = above[-1].score - found[len(above)].score - 1e-3
        found[len(above) :] = [replace(hit, score=round(hit.score + shift, 4)) for hit in found[len(above) :]]
    return found


T = TypeVar("T")


def model_changes(manifest: Manifest, encoders: dict[int, Encoder]) -> str | None:
    """What differs between the models an index was built with and those loaded now (by manifest row), if any."""
    for row, encoder in encoders.items():
        then, now = manifest.models[row], encoder.spec
        if then != now:
            before, after = then.as_dict(), now.as_dict()
            moved = "; ".join(f"{key} {before[key]!r} → {after[key]!r}" for key in before if before[key] != after[key])
            return f"model {then.name} changed since the index was built ({moved})"
    return None


def split_id(ref: str) -> tuple[str, int | None]:
    """(path, line) of `path#line`, or (path, None). The last `#` splits, and only before digits: a note's name
    may hold `#` itself, but never ends in `#` and digits, since notes end in .md or .txt."""
    path, sep, line = ref.rpartition("#")
    if sep and line.isascii() and line.isdigit():
        return path, int(line)
    return ref, None


def note_named(manifest: Manifest, path: str) -> str | None:
    """The indexed path a reference names: itself, or the one equal to it in NFC, since a file name may be stored
    decomposed (macOS writes NFD) while a question, a terminal or a URL hands it over composed, or the reverse."""
    if path in manifest.files:
        return path
    composed = normalise(path)
    return next((known for known in manifest.files if normalise(known) == composed), None)


class Searcher(RetrieverState):
    """Questions of an index that the build half keeps up to date (where auto_update holds)."""

    ranking: RankSettings
    _loading: threading.Lock
    _warm: set[tuple[tuple[str, ...], str]]

    def loaded(self) -> IndexView:
        """The live index, loaded once per generation; brought up to date with the notes first where auto_update
        holds (a read such as `get` takes the manifest instead, and never writes an index)."""
        built = self.built_models()
        missing = [m for m in self.requested_models or [] if built is not None and m not in built]
        if missing:
            raise RetrieverError(
                f"index at {self.store.root} was built with model {', '.join(repr(b) for b in built or [])}, "
                f"not {missing[0]!r}; rebuild it with `{self.store.index_command(full=True)} --encoders {','.join(missing)}`"
            )
        if self.auto_update:
            self.ensure_index()
        with self._loading:  # a question and the watcher that both meet a new generation load it once, not twice
            if self._loaded is None or self._loaded.generation != self.store.generation():
                with paused_gc():
                    self._loaded = self.store.load()
            return self._loaded

    # -- search ------------------------------------------------------------------------------------------------
    def _prepare(self, question: str, k: int, settings: RankSettings, filters: Filters) -> Query:
        valid_k(k)
        asked = read_question(question)
        with phase("index"):
            loaded = self.loaded()
        # before any model loads: a glob that matches nothing fails at once
        allowed = filters.rows(loaded.derived(NoteTable))
        names = [m.name for m in loaded.manifest.models]
        use = [names.index(m) for m in self.requested_models] if self.requested_models else list(range(len(names)))
        with phase("model load"):
            encoders = self._query_encoders([names[m] for m in use], settings.mode)
        loaded = self._same_models(loaded, dict(zip(use, encoders)))
        if encoders:  # the first model reads the least: its budget bounds every channel alike
            asked = clip_for(asked, encoders[0])
        if asked.notice and self.reporter:
            self.reporter.note(asked.notice)
        query, text = Query(loaded, text=asked.text, allowed=allowed), asked.text
        for model, encoder in zip(use, encoders):
            with phase(f"encode {short_name(names[model])}"):
                if model == 0 and settings.rerank and hasattr(encoder, "encode_with_tokens"):
                    vectors, tokens = encoder.encode_with_tokens([text], "query")
                    query.vectors[model], query.tokens = vectors, tokens[0]
                else:
                    query.vectors[model] = encoder.encode([text], "query")
        if settings.mode != "dense":
            with phase("bm25"):
                query.lexical = loaded.lexical(text)
            if query.lexical is None and settings.mode == "lexical":
                raise RetrieverError(
                    f"the index in {self.store.label} has no lexical channel; use --mode dense or hybrid"
                )
        return query

    def _same_models(self, loaded: IndexView, encoders: dict[int, Encoder]) -> IndexView:
        """The index, rebuilt first if a model changed since it was built (an upgraded package, other prompts):
        new question vectors must never meet old passage vectors. Without auto_update, refuse instead."""
        changed = model_changes(loaded.manifest, encoders)
        if changed and self.auto_update:
            self.reembed(changed)
            loaded = self.loaded()
            changed = model_changes(loaded.manifest, encoders)
        if changed:
            raise RetrieverError(f"{changed}; re-embed with `{self.store.index_command()}`")
        return loaded

    def _query_encoders(self, names: list[str], mode: Mode) -> list[Encoder]:
        """The question's encoders and, for the lexical channel, Kiwi: loaded side by side, since a cold question
        waits for the slowest of them (Kiwi ~1.5 s, USE ~1 s) rather than their sum."""
        from concurrent.futures import ThreadPoolExecutor

        wanted = [] if mode == "lexical" else names
        if (tuple(names), mode) in self._warm:  # all loaded: no pool to start on every question
            return [load_query_encoder(name, self.cache_dir) for name in wanted]
        self._warm.add((tuple(names), mode))
        with ThreadPoolExecutor(max_workers=2) as pool:
            if mode != "dense":
                pool.submit(kiwi)
            return list(pool.map(lambda name: load_query_encoder(name, self.cache_dir), wanted))

    def settings(self, mode: Mode | None) -> RankSettings:
        if mode is None:
            return self.ranking
        if mode not in MODES:
            raise RetrieverError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        return replace(self.ranking, mode=mode)

    def _settled(self, read: Callable[[], T]) -> T:
        """A read of the index, asked once more against the alias resolved afresh when it looked inconsistent: a
        shared index may have moved on mid-question, and an intact index must never be called broken."""
        try:
            return read()
        except StaleRead:
            with self._loading:
                self._loaded = None
            return read()

    def ask(
        self, question: str, k: int = 5, explain: bool = False, mode: Mode | None = None, **filters: Any
    ) -> list[Hit]:
        """The k passages closest to the question. Filters (see retriever.search.filters) narrow the search itself:
        path (glob or list of them), tag (one or a list: all required), since and until (YYYY-MM-DD, inclusive),
        collection (a name from retriever.toml)."""
        wanted = Filters.named(filters)
        return self._settled(lambda: self._ask(question, k, explain, mode, wanted))

    def _ask(self, question: str, k: int, explain: bool, mode: Mode | None, filters: Filters) -> list[Hit]:
        settings = self.settings(mode)
        query = self._prepare(question, k, settings, filters)
        with phase("rank"):
            hits = hits_of(rank(query, settings, explain), query.index.manifest.chunks, k)
        with phase("highlights"):
            return lit(hits, query, settings)

    def similar(
        self, question: str, k: int = 5, explain: bool = False, mode: Mode | None = None, **filters: Any
    ) -> list[QuestionHit]:
        """The notes' own questions closest to this one (in notes that ask none, the closest sections); filters
        as for ask."""
        wanted = Filters.named(filters)
        return self._settled(lambda: self._similar(question, k, explain, mode, wanted))

    def _similar(self, question: str, k: int, explain: bool, mode: Mode | None, filters: Filters) -> list[QuestionHit]:
        settings = self.settings(mode)
        query = self._prepare(question, k, settings, filters)
        manifest = query.index.manifest
        with phase("rank"):
            found: list[QuestionHit] = []
            if asks_questions(query.index, query.allowed):
                ranked = rank_questions(query, settings, explain)
                hits = hits_of(ranked, manifest.chunks, k, ranked.passages)
                found = [
                    QuestionHit.asking(h, manifest.questions[int(row)].heading) for h, row in zip(hits, ranked.rows)
                ]
            if len(found) < k:
                found = closest_sections(rank(query, settings, explain), manifest.chunks, k, found)
            return lit(found, query, settings)

    def get(self, ref: str) -> dict[str, Any]:
        """A passage by the id results carry (`path#line`), or a whole note by its path, from the live index as it
        is. A read never writes an index: a note added since the build is not there until the next build, and a
        missing index is named with the command that builds it (not the notes folder a build would have read)."""
        manifest = self._settled(self.manifest)
        wanted, line = split_id(valid_text(ref, "the id").strip())
        path = note_named(manifest, wanted)
        if path is None:
            raise RetrieverError(
                f"no note {wanted!r} in the index; give a path relative to {self.notes}{self._behind()}"
            )
        if line is None:
            text = read_note(self.notes, path, ExtractionCache.of(self.store.local.root, writes=False))
            return {"kind": "note", "id": path, "path": path, "text": text}
        for chunk in manifest.chunks:
            if chunk.path == path and chunk.start_line == line:
                return Hit.of(1, 0.0, chunk, None).to_json() | {"kind": "passage"}
        raise RetrieverError(
            f"no passage {ref!r} in the index; ids look like path#line, as results give them{self._behind()}"
        )

    def _behind(self) -> str:
        """What to add to a read that found nothing, when the index is behind the notes."""
        try:
            reason = self.staleness()
        except RetrieverError:
            return ""
        if reason is None:
            return ""
        return f" ({reason} since the index was built: `{self.store.index_command()}` brings it up to date)"

    def info(self) -> dict[str, Any]:
        manifest = self.manifest()  # the loaded copy in a warm process: a large manifest takes ~0.3 s to parse
        return {
            "index": self.store.label,
            "model": manifest.model.name,
            "dim": manifest.model.dim,
            "models": [f"{m.name} ({m.source}, {m.dim}d)" for m in manifest.models],
            "notes": len(manifest.files),
            "collections": manifest.collections,
            "chunks": len(manifest.chunks),
            "parts": len(manifest.parts),
            "questions": len(manifest.questions),
            "ann": {name: record["kind"] for name, record in manifest.ann.items()},
            "size_bytes": self.store.size_bytes(),
            "store": manifest.store,
            "built_at": manifest.created_at,
            "build_seconds": manifest.build_seconds,
            "fingerprint": manifest.fingerprint,
        }
