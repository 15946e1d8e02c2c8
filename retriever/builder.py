"""The half of a Retriever that builds its index: which models, and one build at a time per index, on this machine
or a Ray cluster. A sibling of the search half (searcher.py) over the state both share (state.py), which the
Retriever's constructor sets. The indexer and the self-check are imported where a build needs them: a question
that finds its index up to date never does, and importing them (with the chunker) cost every cold question ~40 ms."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING

from .encoders import DEFAULT_MODELS, Encoder, ModelSpec, load_encoder, short_name
from .errors import RetrieverError
from .index.generation import StoredIndex
from .local.store import IndexNotWritable
from .progress import ticking
from .reading.extraction_cache import ExtractionCache
from .reading.notes import Listing, NoteScan, scan_notes
from .state import RetrieverState, paused_gc
from .timings import phase

if TYPE_CHECKING:
    from .indexing.indexer import Embedders, IndexReport
    from .indexing.ray_build import RaySettings


LOCK_TIMEOUT = float(os.environ.get("RETRIEVER_LOCK_TIMEOUT", "600"))


class Builder(RetrieverState):
    """Index building, shared by every Retriever."""

    # -- models ------------------------------------------------------------------------------------------------
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
        if ray is not None:  # so does a cluster where nothing listens: before the notes are read or a model loads
            from .indexing.ray_build import probe

            probe(ray.address)
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
            from .indexing.indexer import build
            from .selfcheck import answers

            with phase("model load"), self._phase(f"loading {', '.join(short_name(n) for n in names)}"):
                encoders = self.encoders(names)
            with phase("check previous index"):
                previous = self._previous()
            progress = self.reporter.progress if self.reporter else None
            with self._passes(ray, names, encoders[0].spec, previous, full) as passes_of:
                report = build(
                    scan, encoders, self.chunker, self.store.local, previous, answers, not full, progress, passes_of
                )
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
    def _passes(
        self, ray: RaySettings | None, names: Sequence[str], spec: ModelSpec, previous: StoredIndex | None, full: bool
    ) -> Iterator[Embedders | None]:
        """Who runs a build's passes: this process (None), or a Ray cluster's actors, Ray imported only then. The
        actors encode tokens with the codebook the build keeps: the previous index's for an incremental build."""
        if ray is None:
            yield None
            return
        from .indexing.ray_build import cluster, index_codebook

        if self.reporter:
            self.reporter.note(f"embedding on the Ray cluster at {ray.address}")
        codebook = None if full else index_codebook(previous, spec)
        with cluster(ray, names, self.cache_dir, codebook, resume=not full) as pool:
            yield pool.passes_of

    def _phase(self, message: str) -> AbstractContextManager[None]:
        return self.reporter.phase(message) if self.reporter else nullcontext()

    def _ticking(self, describe: Callable[[], str]) -> AbstractContextManager[None]:
        return ticking(self.reporter.note, describe) if self.reporter else nullcontext()

    def _unchanged(self, scan: NoteScan, names: list[str]) -> IndexReport | None:
        """The report of a build that has nothing to do, found from the manifest alone: loading models costs tens
        of seconds, and an unchanged folder needs none of them."""
        from .indexing.indexer import IndexReport, holds

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

    def reembed(self, changed: str) -> None:
        with self._build_lock():
            if self.reporter:
                self.reporter.note(f"{changed}: re-indexing {self.notes} into {self.store.root}")
            self._build(full=False, by_name=False)
