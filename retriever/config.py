"""`retriever.toml`: the folders an index holds (one, or named collections), what to leave out of them, and the
defaults of the index folder, models and ranking mode, so a person's setup is written once instead of repeated in
every command. Flags and environment variables override it; without it, the defaults are `notes/` and `index/`.

    index = "index"              # optional, like every key
    encoders = "e5,use"
    mode = "hybrid"
    exclude = ["drafts/", "*.tmp.md"]   # .gitignore-style, in every folder (each folder's .gitignore counts too)

    [collections.journal]
    folder = "~/vault/journal"   # relative paths are relative to this file
    exclude = ["private/"]

    [collections.docs]
    folder = "docs"

Instead of collections, `notes = "notes"` names one folder. Read with tomllib only: the fast path of a question
asked of a running server imports nothing heavier.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RetrieverError
from .reading.notes import Folder, Library

CONFIG_FILE = "retriever.toml"
KEYS = {"notes", "index", "encoders", "mode", "exclude", "collections"}
COLLECTION_KEYS = {"folder", "exclude"}
NAME = re.compile(r"[A-Za-z0-9가-힣][\w.-]{0,63}")  # a path's first part: no slash, no leading dot
MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class Settings:
    """What a command runs with, each from its flag or environment variable, else the config file, else the
    default."""

    notes: Library
    index: Path
    encoders: str | None
    mode: str


def config_path() -> Path | None:
    """RETRIEVER_CONFIG (or --config) when set, which must exist; else ./retriever.toml when there is one."""
    named = os.environ.get("RETRIEVER_CONFIG")
    if named:
        return Path(named)
    here = Path(CONFIG_FILE)
    return here if here.is_file() else None


def read_config(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise RetrieverError(f"config {path} is unreadable ({exc.strerror})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise RetrieverError(f"config {path} is over {MAX_CONFIG_BYTES >> 20} MiB; it is a few lines of TOML")
    try:
        config = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RetrieverError(f"config {path} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib reads nested arrays and tables by recursion: 100 000 deep exhausts the stack
        raise RetrieverError(f"config {path} nests values too deeply to read; it is a few lines of TOML") from None
    unknown = sorted(set(config) - KEYS)
    if unknown:
        raise RetrieverError(f"config {path}: unknown key {unknown[0]!r}; keys are {', '.join(sorted(KEYS))}")
    return config


def text(config: dict[str, Any], key: str, where: Path) -> str | None:
    value = config.get(key)
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise RetrieverError(f"config {where}: {key} must be a non-empty string, not {value!r}")
    return value


def globs(config: dict[str, Any], where: Path) -> tuple[str, ...]:
    value = config.get("exclude", [])
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise RetrieverError(f"config {where}: exclude must be a list of globs, not {value!r}")
    return tuple(value)


def folder_path(value: str, where: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else where.parent / path


def library(config: dict[str, Any], where: Path) -> Library | None:
    exclude = globs(config, where)
    collections = config.get("collections")
    if collections is None:
        notes = text(config, "notes", where)
        return Library((Folder(folder_path(notes, where), exclude=exclude),)) if notes else None
    if "notes" in config:
        raise RetrieverError(f"config {where}: give notes or collections, not both")
    if not isinstance(collections, dict) or not collections:
        raise RetrieverError(f"config {where}: collections must be tables, as [collections.NAME]")
    folders = []
    for name, table in collections.items():
        if not NAME.fullmatch(name):
            raise RetrieverError(f"config {where}: collection name {name!r} must be letters, digits, _ . or -")
        if not isinstance(table, dict) or set(table) - COLLECTION_KEYS or not text(table, "folder", where):
            raise RetrieverError(f"config {where}: collection {name!r} takes folder (required) and exclude")
        folders.append(Folder(folder_path(table["folder"], where), name, exclude + globs(table, where)))
    return Library(tuple(folders))


def settings(notes: Path | None, index: Path | None, encoders: str | None, mode: str | None) -> Settings:
    """A command's flags (None where not given) completed from the config file and the defaults."""
    where = config_path()
    config = read_config(where) if where else {}
    found = library(config, where) if where else None
    configured_index = text(config, "index", where) if where else None
    return Settings(
        notes=Library.of(notes) if notes is not None else found or Library.of("notes"),
        index=index or (folder_path(configured_index, where) if configured_index and where else Path("index")),
        encoders=encoders or (text(config, "encoders", where) if where else None),
        mode=mode or (text(config, "mode", where) if where else None) or "hybrid",
    )
