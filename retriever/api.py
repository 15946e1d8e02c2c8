"""The typed API the CLI is a thin layer over: `Retriever(notes_dir, index_dir).ask(question, k)`."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from .chunking import Chunk, ChunkerSettings
from .encoders import DEFAULT_MODEL, Encoder, load_encoder
from .errors import RetrieverError
from .indexer import IndexReport, build
from .notes import normalise, notes_changed, require_folder, scan_notes
from .store import IndexStore, LoadedIndex


class Reporter(Protocol):
    """Where long work tells the user what it is doing; the CLI draws it on stderr."""

    def note(self, message: str) -> None: ...

    def progress(self, done: int, total: int) -> None: ...


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    path: str
    heading: str
    start_line: int
    end_line: int
    text: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class QuestionHit(Hit):
    """A note's own question that resembles the asked one; text is its answer."""

    question: str = ""


def default_cache_dir() -> Path:
    configured = os.environ.get("RETRIEVER_CACHE_DIR")
    if configured:
        return Path(configured)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("retriever"))


def canonical_model(name: str) -> str:
    """The name an index records for a model, so `--model ./m` and `--model /abs/m` compare equal."""
    local = Path(name).expanduser()
    return str(local.resolve()) if name != DEFAULT_MODEL and local.exists() else name


class Retriever:
    def __init__(
        self,
        notes_dir: Path | str = "notes",
        index_dir: Path | str = "index",
        model: str | None = None,
        cache_dir: Path | None = None,
        chunker: ChunkerSettings | None = None,
        reporter: Reporter | None = None,
        auto_update: bool = True,
    ) -> None:
        self.notes_dir = Path(notes_dir)
        self.store = IndexStore(Path(index_dir))
        self.requested_model = canonical_model(model) if model else None
        self.cache_dir = cache_dir or default_cache_dir()
        self.chunker = chunker or ChunkerSettings()
        self.reporter = reporter
        self.auto_update = auto_update
        self._encoder: Encoder | None = None
        self._loaded: LoadedIndex | None = None

    # -- model -------------------------------------------------------------------------------------------------
    def model_name(self) -> str:
        """Explicit choice first, then whatever the existing index was built with, then the default."""
        if self.requested_model:
            return self.requested_model
        try:
            return self.store.read_manifest().model.name if self.store.exists() else DEFAULT_MODEL
        except RetrieverError:  # a broken index is rebuilt with the default
            return DEFAULT_MODEL

    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = load_encoder(self.model_name(), self.cache_dir)
        return self._encoder

    # -- index -------------------------------------------------------------------------------------------------
    def index(self, full: bool = False) -> IndexReport:
        with self.store.lock():
            scan = scan_notes(self.notes_dir)
            progress = self.reporter.progress if self.reporter else None
            report = build(scan, self.encoder(), self.chunker, self.store, self._previous(), not full, progress)
        self._loaded = None
        return report

    def _previous(self) -> LoadedIndex | None:
        """The current index to reuse vectors from; a broken one is simply not reused."""
        try:
            return self.store.load() if self.store.exists() else None
        except RetrieverError:
            return None

    def staleness(self) -> str | None:
        """Why the index must be (re)built before answering, or None when it is up to date."""
        require_folder(self.notes_dir)
        if not self.store.exists():
            return "no index yet"
        manifest = self.store.read_manifest()
        if manifest.chunker != self.chunker.as_dict():
            return "chunk settings changed"
        if notes_changed(self.notes_dir, manifest.files):
            return "notes changed"
        return None

    def ensure_index(self) -> IndexReport | None:
        reason = self.staleness()
        if reason is None:
            return None
        if self.reporter:
            self.reporter.note(f"{reason}: indexing {self.notes_dir} into {self.store.root}")
        return self.index()

    def loaded(self) -> LoadedIndex:
        if self.requested_model and self.store.exists():
            built_with = self.store.read_manifest().model.name
            if built_with != self.requested_model:
                raise RetrieverError(
                    f"index at {self.store.root} was built with model {built_with!r}, not {self.requested_model!r}; "
                    f"rebuild it with `retriever index --full --model {self.requested_model}`"
                )
        if self.auto_update:
            self.ensure_index()
        if self._loaded is None:
            self._loaded = self.store.load()
        return self._loaded

    # -- search ------------------------------------------------------------------------------------------------
    def _search(self, question: str, k: int, collection: str) -> list[tuple[float, Chunk]]:
        question = normalise(question).strip()
        if not question:
            raise RetrieverError("the question is empty")
        if k < 1:
            raise RetrieverError(f"k must be at least 1, not {k}")
        loaded = self.loaded()
        items = loaded.manifest.items(collection)
        if not items:
            return []
        vector = self.encoder().encode([question], "query")
        scores, rows = loaded.ann[collection].search(vector, k)
        return [(float(s), items[r]) for s, r in zip(scores[0], rows[0]) if r >= 0]

    def ask(self, question: str, k: int = 5) -> list[Hit]:
        return [
            Hit(rank, round(score, 4), c.path, c.heading, c.start_line, c.end_line, c.text)
            for rank, (score, c) in enumerate(self._search(question, k, "chunks"), start=1)
        ]

    def similar(self, question: str, k: int = 5) -> list[QuestionHit]:
        return [
            QuestionHit(rank, round(score, 4), c.path, c.heading, c.start_line, c.end_line, c.text, c.heading)
            for rank, (score, c) in enumerate(self._search(question, k, "questions"), start=1)
        ]

    def info(self) -> dict[str, Any]:
        gen = self.store.live_generation()
        manifest = self.store.read_manifest()
        return {
            "index": str(self.store.root),
            "model": manifest.model.name,
            "model_source": manifest.model.source,
            "dim": manifest.model.dim,
            "notes": len(manifest.files),
            "chunks": len(manifest.chunks),
            "questions": len(manifest.questions),
            "ann": manifest.ann,
            "size_bytes": sum(p.stat().st_size for p in gen.iterdir()),
            "built_at": manifest.created_at,
            "build_seconds": manifest.build_seconds,
            "fingerprint": manifest.fingerprint,
        }
