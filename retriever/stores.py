"""Which store holds an index: local files with FAISS (the default), or Milvus, for many machines sharing one.

Neither is imported before it is chosen: a question on the local store never pays for pymilvus.
"""

from __future__ import annotations

from pathlib import Path

from .errors import RetrieverError
from .local.store import IndexStore
from .milvus.location import MILVUS_SCHEME, is_milvus, shown


def open_store(index: Path, store: str | None, notes: Path | None) -> IndexStore:
    """The store that holds the index: local files under `index` with FAISS (no store given), or Milvus
    (`milvus://host:port/name`, or a Milvus Lite file `path.db`), for which `index` only stages builds."""
    if not store:
        return IndexStore(index, notes)
    check_store(store)
    from .milvus.store import MilvusStore

    return MilvusStore(store, IndexStore(index, notes))


def check_store(store: str | None) -> None:
    """All of --store that can be checked without connecting: a server checks it before it listens, so that a bad
    store is its one line, not an error after its `serving … on http://…` announcement."""
    if not store:
        return
    if not is_milvus(store):
        raise RetrieverError(
            f"unknown store {shown(store)!r}: give milvus://HOST:PORT/NAME or a Milvus Lite file ending in .db"
        )
    if store.startswith(MILVUS_SCHEME):
        from .milvus.location import Location

        Location.parse(store)
    else:
        check_lite_path(store)


def check_lite_path(store: str) -> None:
    """A Milvus Lite database is a folder the engine creates at the path; its parent must already exist, so a typo
    creates no tree of folders wherever the user may write, and a file there is something else of the user's."""
    path = Path(store).expanduser()
    if not path.parent.is_dir():
        raise RetrieverError(f"store {store!r}: the folder {str(path.parent)!r} does not exist; create it first")
    if path.exists() and not path.is_dir():
        raise RetrieverError(
            f"store {store!r} is a file, not a Milvus Lite database (which is a folder); give another path"
        )
