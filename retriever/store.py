"""The index on disk: versioned, checked on load, replaced atomically.

Layout: `<index>/CURRENT` names the live generation folder `<index>/gen-*`, which holds `manifest.json`, the
vectors as `.npy` and the FAISS files. A build writes a whole new generation into a hidden temp folder, renames
it into place and only then rewrites CURRENT (itself by rename), so a crash at any point leaves the previous
index intact and readable.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .chunking import Chunk
from .encoders import ModelSpec
from .errors import RetrieverError
from .notes import FileStamp

FORMAT = "retriever-index"
VERSION = 1
COLLECTIONS = ("chunks", "questions")  # passages for `ask`, note headings for `similar`
CURRENT = "CURRENT"
KEEP_GENERATIONS = 2  # the live one and its predecessor, for readers that opened the old one mid-swap


@dataclass
class Manifest:
    model: ModelSpec
    chunker: dict[str, int]
    ann: str
    files: dict[str, FileStamp]
    chunks: list[Chunk]
    questions: list[Chunk]  # a section, keyed by its heading
    created_at: str = ""
    build_seconds: float = 0.0
    checksums: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.model, self.chunker)

    def items(self, collection: str) -> list[Chunk]:
        return self.chunks if collection == "chunks" else self.questions

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "fingerprint": self.fingerprint,
            "model": self.model.as_dict(),
            "chunker": self.chunker,
            "ann": self.ann,
            "created_at": self.created_at,
            "build_seconds": round(self.build_seconds, 3),
            "checksums": self.checksums,
            "files": {path: asdict(stamp) for path, stamp in self.files.items()},
            "chunks": [chunk_json(c) for c in self.chunks],
            "questions": [chunk_json(c) for c in self.questions],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            model=ModelSpec(**data["model"]),
            chunker=dict(data["chunker"]),
            ann=str(data["ann"]),
            files={path: FileStamp(**stamp) for path, stamp in data["files"].items()},
            chunks=[chunk_from_json(c) for c in data["chunks"]],
            questions=[chunk_from_json(c) for c in data["questions"]],
            created_at=str(data["created_at"]),
            build_seconds=float(data["build_seconds"]),
            checksums=dict(data["checksums"]),
        )


def fingerprint(model: ModelSpec, chunker: dict[str, int]) -> str:
    """Vectors are reusable only under the same model, prompts and chunking: hash them all together."""
    blob = json.dumps({"v": VERSION, "model": model.as_dict(), "chunker": chunker}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def chunk_json(chunk: Chunk) -> dict[str, Any]:
    return {**asdict(chunk), "headings": list(chunk.headings), "hash": chunk.content_hash}


def chunk_from_json(data: dict[str, Any]) -> Chunk:
    return Chunk(data["path"], tuple(data["headings"]), data["start_line"], data["end_line"], data["text"])


@dataclass
class LoadedIndex:
    manifest: Manifest
    vectors: dict[str, np.ndarray]  # collection → [n, dim]
    ann: dict[str, Any]  # collection → VectorIndex
    path: Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class IndexStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def rebuild_hint(self) -> str:
        return f"rebuild it with `retriever index --full --index {self.root}`"

    def generation(self) -> Path | None:
        try:
            name = (self.root / CURRENT).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise RetrieverError(f"index at {self.root} is unreadable ({exc}); {self.rebuild_hint}") from exc
        if not name.startswith("gen-") or "/" in name or not (self.root / name).is_dir():
            raise RetrieverError(f"index at {self.root} is broken (CURRENT names no generation); {self.rebuild_hint}")
        return self.root / name

    def exists(self) -> bool:
        return self.generation() is not None

    def live_generation(self) -> Path:
        gen = self.generation()
        if gen is None:
            raise RetrieverError(f"no index at {self.root}; build it with `retriever index --index {self.root}`")
        return gen

    def read_manifest(self) -> Manifest:
        return self._manifest(self.live_generation())

    def _manifest(self, gen: Path) -> Manifest:
        try:
            data = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RetrieverError(f"index manifest at {gen} is unreadable or corrupt; {self.rebuild_hint}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RetrieverError(f"{gen / 'manifest.json'} is not a retriever index manifest; {self.rebuild_hint}")
        if not isinstance(data.get("version"), int) or data["version"] > VERSION:
            raise RetrieverError(
                f"index at {self.root} has format version {data.get('version')}, newer than this retriever "
                f"reads ({VERSION}); upgrade retriever or {self.rebuild_hint}"
            )
        try:
            return Manifest.from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise RetrieverError(f"index manifest at {gen} is incomplete ({exc}); {self.rebuild_hint}") from exc

    def load(self) -> LoadedIndex:
        from .ann import load_index

        gen = self.live_generation()
        manifest = self._manifest(gen)
        vectors: dict[str, np.ndarray] = {}
        anns: dict[str, Any] = {}
        for name in COLLECTIONS:
            files = (f"{name}.npy", f"{name}.faiss")
            for file in files:
                path = gen / file
                if not path.is_file() or sha256_file(path) != manifest.checksums.get(file):
                    raise RetrieverError(f"index file {path} is missing or altered; {self.rebuild_hint}")
            try:
                vectors[name] = np.load(gen / files[0], allow_pickle=False)
                anns[name] = load_index(manifest.ann, gen / files[1])
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise RetrieverError(f"index file in {gen} could not be read ({exc}); {self.rebuild_hint}") from exc
            rows = len(manifest.items(name))
            if vectors[name].shape != (rows, manifest.model.dim) or len(anns[name]) != rows:
                raise RetrieverError(
                    f"index at {self.root} is inconsistent: {name} has {rows} entries but vectors of shape "
                    f"{vectors[name].shape}; {self.rebuild_hint}"
                )
        return LoadedIndex(manifest, vectors, anns, gen)

    def write(self, manifest: Manifest, vectors: dict[str, np.ndarray]) -> Path:
        """Write a complete new generation and make it current; the old one stays readable until then."""
        from .ann import build_index

        self.root.mkdir(parents=True, exist_ok=True)
        name = f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        tmp = self.root / f".tmp-{name}"
        tmp.mkdir()
        for collection in COLLECTIONS:
            matrix = np.ascontiguousarray(vectors[collection], dtype=np.float32)
            with (tmp / f"{collection}.npy").open("wb") as handle:
                np.save(handle, matrix, allow_pickle=False)
                handle.flush()
                os.fsync(handle.fileno())
            ann = build_index(matrix)
            manifest.ann = ann.kind
            ann.save(tmp / f"{collection}.faiss")
            for file in (f"{collection}.npy", f"{collection}.faiss"):
                manifest.checksums[file] = sha256_file(tmp / file)
        write_file(tmp / "manifest.json", json.dumps(manifest.to_json(), ensure_ascii=False, indent=1).encode())
        fsync_dir(tmp)
        os.rename(tmp, self.root / name)
        pointer = self.root / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
        write_file(pointer, name.encode())
        os.replace(pointer, self.root / CURRENT)
        fsync_dir(self.root)
        self.sweep()
        return self.root / name

    def sweep(self) -> None:
        """Drop generations beyond the newest few and temp folders of interrupted builds.

        Only called with the build lock held, so no temp folder here belongs to a live build.
        """
        current = self.generation()
        gens = sorted((p for p in self.root.glob("gen-*") if p != current), key=lambda p: p.stat().st_mtime)
        stale = gens[: max(len(gens) - (KEEP_GENERATIONS - 1), 0)]
        stale += [p for p in self.root.glob(".tmp-gen-*")] + [p for p in self.root.glob(f".{CURRENT}.*")]
        for path in stale:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def lock(self, timeout: float = -1):  # noqa: ANN201 - filelock's type
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".build.lock"), timeout=timeout)
