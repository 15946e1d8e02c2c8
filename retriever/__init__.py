"""retriever: offline semantic search over your own notes, in Korean and English."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import timings  # noqa: F401 - first, so its clock starts with the package
from .errors import RetrieverError
from .reading.notes import Folder, Library
from .search.results import Hit, QuestionHit

if TYPE_CHECKING:
    from .api import Retriever

__all__ = ["Folder", "Hit", "Library", "QuestionHit", "Retriever", "RetrieverError", "version"]


def version() -> str:
    """The installed distribution's version, as `--version` and the MCP server report it."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("retriever")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def __getattr__(name: str) -> Any:
    """The API pulls in numpy and the model code; a command answered by a running server needs neither."""
    if name == "Retriever":
        from .api import Retriever

        return Retriever
    raise AttributeError(name)
