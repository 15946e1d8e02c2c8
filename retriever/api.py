"""The typed API the CLI is a thin layer over: `Retriever(notes_dir, index_dir).ask(question, k)`."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from .builder import Builder
from .encoders import ALIASES
from .encoders.threads import cap_threads
from .errors import RetrieverError
from .index.view import IndexView
from .reading.chunker_settings import ChunkerSettings
from .reading.notes import Library
from .search.ranking import MODES, Mode, RankSettings
from .searcher import Searcher
from .state import Reporter
from .stores import open_store


def default_cache_dir() -> Path:
    configured = os.environ.get("RETRIEVER_CACHE_DIR")
    if configured:
        return Path(configured)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("retriever"))


def canonical_model(name: str) -> str:
    """The name an index records for a model, so `e5`, `./m` and `/abs/m` compare equal to what it stored."""
    name = ALIASES.get(name, name)
    local = Path(name).expanduser()
    return str(local.resolve()) if name not in ALIASES.values() and local.exists() else name


class Retriever(Searcher, Builder):
    """Notes -> index -> answers: the search half (searcher.py) and the build half (builder.py) of one object,
    siblings over the state they share (state.py), set up here from the caller's arguments, each checked with a
    one-line error."""

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
