"""What the two halves of a Retriever share: the build half (builder.py) and the search half (searcher.py) are
siblings over it, so answering a question never imports the build code. It holds what `Retriever.__init__` sets
and the live index once loaded, and reads what both halves ask of them: the live manifest, its models, and whether
the index is behind the notes. Where a question needs a build (the index behind its notes, a model changed under
its name) the search half asks for it through the two methods declared here, which the build half provides."""

from __future__ import annotations

import gc
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .errors import RetrieverError
from .local.store import OlderFormat
from .milvus.connection import CredentialsRefused, StoreUnreachable
from .reading.notes import notes_changed

if TYPE_CHECKING:
    from .index.manifest import Manifest
    from .index.view import IndexView
    from .local.store import IndexStore
    from .progress import EmbedProgress
    from .reading.chunker_settings import ChunkerSettings
    from .reading.notes import Library


class Reporter(Protocol):
    """Where long work tells the user what it is doing; the CLI draws it on stderr."""

    def note(self, message: str) -> None: ...

    def phase(self, message: str) -> AbstractContextManager[None]:
        """Around a step that may take a while before any progress can be counted (loading models)."""
        ...

    def progress(self, state: EmbedProgress) -> None: ...


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


class RetrieverState(ABC):
    """The fields `Retriever.__init__` sets, and the reads both halves make of them."""

    notes: Library
    store: IndexStore
    requested_models: list[str] | None
    cache_dir: Path
    chunker: ChunkerSettings
    reporter: Reporter | None
    auto_update: bool
    _loaded: IndexView | None

    def manifest(self) -> Manifest:
        """The live manifest: the loaded copy while it is still the live generation, so a warm process answers
        without re-parsing the manifest, yet sees a build made by another process."""
        if self._loaded is not None and self._loaded.generation == self.store.generation():
            return self._loaded.manifest
        return self.store.read_manifest()

    def built_models(self) -> list[str] | None:
        """The models of the existing index, or None when there is none (or it is broken and will be rebuilt)."""
        try:
            return [m.name for m in self.manifest().models] if self.store.exists() else None
        except (StoreUnreachable, CredentialsRefused):
            raise  # the store's connection, not its index: going on would wait out the connect timeout again
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

    @abstractmethod
    def ensure_index(self) -> object:
        """Build or update the index when the notes moved on (the build half's, which says what it built: the
        search half only needs it done, and names no type of the build code)."""

    @abstractmethod
    def reembed(self, changed: str) -> None:
        """Build the index again with the models loaded now, because `changed` says a model's spec moved under its
        name since the index was built (the build half's)."""
