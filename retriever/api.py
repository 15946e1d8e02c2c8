"""The typed API the CLI is a thin layer over: `Retriever(notes_dir, index_dir).ask(question, k)`."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .chunking import Chunk, ChunkerSettings
from .encoders import ALIASES, DEFAULT_MODEL, USE_MODEL, Encoder, load_encoder, load_query_encoder
from .errors import RetrieverError, StaleRead
from .extraction_cache import ExtractionCache
from .filters import Filters
from .generation import StoredIndex
from .indexer import Embedders, IndexReport, build, holds
from .korean import kiwi
from .lexical import highlights, tokenize
from .manifest import Manifest
from .milvus_connection import CredentialsRefused, StoreUnreachable
from .notes import Library, Listing, NoteScan, normalise, notes_changed, read_note, scan_notes
from .progress import EmbedProgress, ticking
from .question import clip_for, read_question, valid_k, valid_text
from .ranking import MODES, Mode, Query, Ranked, RankSettings, asks_questions, rank, rank_questions
from .results import Hit, QuestionHit
from .store import IndexNotWritable, OlderFormat
from .stores import open_store
from .threads import cap_threads
from .timings import phase
from .vectorstore import IndexView

if TYPE_CHECKING:
    from .ray_build import RaySettings

H = TypeVar("H", bound=Hit)


class Reporter(Protocol):
    """Where long work tells the user what it is doing; the CLI draws it on stderr."""

    def note(self, message: str) -> None: ...

    def phase(self, message: str) -> AbstractContextManager[None]:
        """Around a step that may take a while before any progress can be counted (loading models)."""
        ...

    def progress(self, state: EmbedProgress) -> None: ...


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
    wanted = set(tokenize(query.text))  # once for all the hits
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


single_threaded_blas = cap_threads  # the name the Ray build's actors call it by


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a build or a load makes its ~10⁵ small objects (chunks, parts, manifest
    records), none of them garbage yet: each full collection walks them all, which was 0.5-1 s of a 3.5 s re-index
    at 10 000 notes. Whatever cycles they leave are collected afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


LOCK_TIMEOUT = float(os.environ.get("RETRIEVER_LOCK_TIMEOUT", "600"))
T = TypeVar("T")


def default_cache_dir() -> Path:
    configured = os.environ.get("RETRIEVER_CACHE_DIR")
    if configured:
        return Path(configured)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("retriever"))


DEFAULT_MODELS = (DEFAULT_MODEL, USE_MODEL)  # the ensemble measured best on both dev sets


def short_name(name: str) -> str:
    """e5 and use by their aliases, anything else by its last path part."""
    return next((alias for alias, full in ALIASES.items() if full == name), Path(name).name or name)


def canonical_model(name: str) -> str:
    """The name an index records for a model, so `e5`, `./m` and `/abs/m` compare equal to what it stored."""
    name = ALIASES.get(name, name)
    local = Path(name).expanduser()
    return str(local.resolve()) if name not in ALIASES.values() and local.exists() else name


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


class Retriever:
    def __init__(
        self,
        notes_dir: Path | str | Library = "notes",
        index_dir: Path | str = "index",
        models: Sequence[str] | str | None = None,
        cache_dir: Path | None = None,
        chunker: ChunkerSettings | None = None,
        reporter: Reporter | None = None,
        auto_update: bool = True,
        mode: Mode = "hybrid",
        store: str | None = None,
    ) -> None:
        if not isinstance(notes_dir, str | os.PathLike | Library):
            raise RetrieverError(f"notes_dir must be a folder path (str or Path) or a Library, not {notes_dir!r}")
        if not isinstance(index_dir, str | os.PathLike):
            raise RetrieverError(f"index_dir must be a folder path (str or Path), not {index_dir!r}")
        if store is not None and not isinstance(store, str):
            raise RetrieverError(
                f"store must be milvus://HOST:PORT/NAME, a Milvus Lite .db path or None, not a {type(store).__name__}"
            )
        if models is not None and not (
            isinstance(models, str) or (isinstance(models, Sequence) and all(isinstance(m, str) for m in models))
        ):
            raise RetrieverError(f"models must be a model name or a list of them, not {models!r}")
        cap_threads()
        self.notes = Library.of(notes_dir)  # one folder, or the collections of retriever.toml
        self.store = open_store(Path(index_dir), store, self.notes.lone_folder)
        if isinstance(models, str):
            models = [models]
        self.requested_models = [canonical_model(m) for m in models] if models else None
        self.cache_dir = cache_dir or default_cache_dir()
        self.chunker = chunker or ChunkerSettings()
        self.reporter = reporter
        self.auto_update = auto_update and not self.store.shared  # a shared index is built by `index` alone
        if mode not in MODES:
            raise RetrieverError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        self.ranking = RankSettings(mode=mode)
        self._loaded: IndexView | None = None
        self._loading = threading.Lock()
        self._warm: set[tuple[tuple[str, ...], str]] = set()  # (models, mode) _query_encoders has loaded for

    # -- models ------------------------------------------------------------------------------------------------
    def built_models(self) -> list[str] | None:
        """The models of the existing index, or None when there is none (or it is broken and will be rebuilt)."""
        try:
            return [m.name for m in self.manifest().models] if self.store.exists() else None
        except (StoreUnreachable, CredentialsRefused):
            raise  # the store's connection, not its index: going on would wait out the connect timeout again
        except RetrieverError:
            return None

    def index_models(self) -> list[str]:
        """What `index` embeds with: the explicit choice, else what the index already has, else the defaults."""
        return self.requested_models or self.built_models() or list(DEFAULT_MODELS)

    def encoders(self, names: Sequence[str]) -> list[Encoder]:
        return [load_encoder(name, self.cache_dir) for name in names]

    # -- index -------------------------------------------------------------------------------------------------
    def index(self, full: bool = False, ray: RaySettings | None = None) -> IndexReport:
        """ray: shard the passes over a Ray cluster (`ray_build`) instead of running them here."""
        with self._build_lock():
            return self._build(full, ray=ray)

    @paused_gc()
    def _build(self, full: bool, by_name: bool = True, ray: RaySettings | None = None) -> IndexReport:
        """Only ever called with the build lock held, so what earlier builds left behind (a crash's temp folder,
        surplus generations) can be cleared first, even when nothing changed and nothing is written.

        by_name: an index of the same notes under the same model names is taken as up to date before any model
        loads; a question that found a model's spec changed under its name asks again with the models loaded."""
        self.store.sweep()
        if self.store.shared:  # an unreachable store or wrong credentials fail now, not after minutes of embedding
            self.store.generation()
        listing = Listing()
        extracted = ExtractionCache.of(self.store.local.root)
        with (
            phase("scan notes"),
            self._ticking(lambda: f"reading the notes folder: {listing.seen:,} files seen so far"),
        ):
            scan = scan_notes(self.notes, listing, extracted)
        if not scan.notes:
            raise RetrieverError("no notes to index: the folder has no readable .md or .txt files")
        names = self.index_models()
        report = self._unchanged(scan, names) if by_name and not full else None
        if report is None:
            with phase("model load"), self._phase(f"loading {', '.join(short_name(n) for n in names)}"):
                encoders = self.encoders(names)
            with phase("check previous index"):
                previous = self._previous()
            progress = self.reporter.progress if self.reporter else None
            with self._passes(ray, names) as passes_of:
                report = build(scan, encoders, self.chunker, self.store.local, previous, not full, progress, passes_of)
        extracted.prune(stamp.sha256 for stamp in scan.stamps.values())  # the live index holds these files now
        started = time.perf_counter()
        with phase("publish"):
            published = self.store.publish()
        if not published:
            return report
        if self.reporter:
            for notice in self.store.notices:
                self.reporter.note(notice)
            self.reporter.note(f"published the index to {self.store.label}")
        return replace(report, seconds=report.seconds + time.perf_counter() - started, up_to_date=False)

    @contextmanager
    def _passes(self, ray: RaySettings | None, names: Sequence[str]) -> Iterator[Embedders | None]:
        """Who runs a build's passes: this process (None), or a Ray cluster's actors, Ray imported only then."""
        if ray is None:
            yield None
            return
        from .ray_build import cluster

        if self.reporter:
            self.reporter.note(f"embedding on the Ray cluster at {ray.address}")
        with cluster(ray, names, self.cache_dir) as pool:
            yield pool.passes_of

    def _phase(self, message: str) -> AbstractContextManager[None]:
        return self.reporter.phase(message) if self.reporter else nullcontext()

    def _ticking(self, describe: Callable[[], str]) -> AbstractContextManager[None]:
        return ticking(self.reporter.note, describe) if self.reporter else nullcontext()

    def _unchanged(self, scan: NoteScan, names: list[str]) -> IndexReport | None:
        """The report of a build that has nothing to do, found from the manifest alone: loading models costs tens
        of seconds, and an unchanged folder needs none of them."""
        started = time.perf_counter()
        staging = self.store.local  # a shared store's staged build: what a publish to any name is made from
        try:
            manifest = staging.read_manifest() if staging.exists() else None
        except RetrieverError:
            return None
        if manifest is None or not holds(manifest, scan, names, self.chunker):
            return None
        return IndexReport.nothing_to_do(scan, manifest, started, up_to_date=True)

    @contextmanager
    def _build_lock(self) -> Iterator[None]:
        """One build at a time per index: a second waits, says so, and gives up with a clear line after a while."""
        from filelock import Timeout

        self.notes.require()  # before the index folder is made: a mistyped --notes leaves nothing behind
        made = not self.store.root.exists()
        try:
            lock = self.store.lock()
            lock.acquire(timeout=0)
        except Timeout:  # before OSError, which it is a kind of
            if self.reporter:
                self.reporter.note(f"waiting for another build of {self.store.label} to finish")
            try:
                lock.acquire(timeout=LOCK_TIMEOUT)
            except Timeout:
                raise RetrieverError(
                    f"another retriever is still building {self.store.root} after {LOCK_TIMEOUT:.0f} s; "
                    f"try again when it is done (lock file {lock.lock_file})"
                ) from None
        except OSError as exc:
            raise IndexNotWritable(self.store.root, exc) from exc
        try:
            yield
        except OSError as exc:  # a full disk, a read-only folder: the live index is untouched either way
            raise IndexNotWritable(self.store.root, exc) from exc
        finally:
            lock.release()
            if made:  # a first build that failed (no notes, say) leaves no index folder holding only its lock
                self.store.remove_if_empty()

    def _previous(self) -> StoredIndex | None:
        """The current index to reuse vectors from (a shared store's staged build, whatever name it was published
        under); a broken one is simply not reused."""
        try:
            return self.store.local.verified() if self.store.local.exists() else None
        except RetrieverError:
            return None

    def staleness(self) -> str | None:
        """Why the index must be (re)built before answering, or None when it is up to date."""
        if self.store.shared and not self.notes.exists():
            return None  # a server answering from a shared store, on a machine without the notes: not its to tell
        self.notes.require()
        if not self.store.exists():
            return "no index yet"
        try:
            manifest = self.manifest()
        except OlderFormat:
            return "the index format changed"
        if manifest.chunker != self.chunker.as_dict():
            return "chunk settings changed"
        if notes_changed(self.notes, manifest.files):
            return "notes changed"
        return None

    def ensure_index(self) -> IndexReport | None:
        """Build or update the index when the notes moved on; a read-only index that exists still answers, as it
        was built, since a stale answer serves better than none."""
        reason = None if self.store.shared else self.staleness()
        if reason is None:
            return None
        try:
            with self._build_lock():
                reason = self.staleness()  # again: a build we waited for may have brought it up to date
                if reason is None:
                    return None
                if self.reporter:
                    self.reporter.note(f"{reason}: indexing {self.notes} into {self.store.root}")
                report = self._build(full=False)
            if self.reporter:
                for path, why in report.skipped:
                    self.reporter.note(f"skipped {path}: {why}")
            return report
        except IndexNotWritable as exc:
            if reason == "no index yet" or not exc.read_only:
                raise
            if self.reporter:
                self.reporter.note(f"{reason}, but {exc}; answering from the index as it was built")
            return None

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

    def manifest(self) -> Manifest:
        """The live manifest: the loaded copy while it is still the live generation, so a warm process answers
        without re-parsing the manifest, yet sees a build made by another process."""
        if self._loaded is not None and self._loaded.generation == self.store.generation():
            return self._loaded.manifest
        return self.store.read_manifest()

    # -- search ------------------------------------------------------------------------------------------------
    def _prepare(self, question: str, k: int, settings: RankSettings, filters: Filters) -> Query:
        valid_k(k)
        asked = read_question(question)
        with phase("index"):
            loaded = self.loaded()
        allowed = filters.rows(loaded.notes)  # before any model loads: a glob that matches nothing fails at once
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
            with phase("encode"):
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
            with self._build_lock():
                if self.reporter:
                    self.reporter.note(f"{changed}: re-indexing {self.notes} into {self.store.root}")
                self._build(full=False, by_name=False)
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
        """The k passages closest to the question. Filters (see retriever.filters) narrow the search itself:
        path (glob or list of them), tag (one or a list: all required), since and until (YYYY-MM-DD, inclusive),
        collection (a name from retriever.toml)."""
        wanted = Filters.named(filters)
        return self._settled(lambda: self._ask(question, k, explain, mode, wanted))

    def _ask(self, question: str, k: int, explain: bool, mode: Mode | None, filters: Filters) -> list[Hit]:
        settings = self.settings(mode)
        query = self._prepare(question, k, settings, filters)
        with phase("rank"):
            return lit(hits_of(rank(query, settings, explain), query.index.manifest.chunks, k), query, settings)

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
