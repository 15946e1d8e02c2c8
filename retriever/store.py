"""The index on disk: versioned, checked on load, replaced atomically.

Layout: `<index>/CURRENT` names the live generation folder `<index>/gen-*`, which holds `manifest.json`, the
vectors as `.npy` and the FAISS files. A build writes a whole new generation into a hidden temp folder, renames
it into place and only then rewrites CURRENT (itself by rename), so a crash at any point leaves the previous
index intact and readable.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shlex
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .chunking import Chunk, Part
from .encoders import ModelSpec
from .errors import RetrieverError
from .failpoints import failpoint
from .notes import FileStamp
from .rowfile import RowReader, RowWriter
from .tokencodes import Codebook, token_floats
from .vectorstore import IndexView

if TYPE_CHECKING:  # ann imports faiss, which only builds and loads need
    from .ann import Training
    from .lexical import LexicalScores

FORMAT = "retriever-index"
VERSION = 6  # 3: token vectors in immutable segments shared between generations; 4: the manifest is checksummed;
# 5: token vectors in int8; 6: one pass per chunk (parts and headings pooled from it), token vectors as codes
COLLECTIONS = ("chunks", "parts", "questions")
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.sha256"  # SHA-256 of manifest.json: the one file the per-file checksums cannot cover
SPANS = "m0.part_token_spans"  # [parts, 3]: segment, first and end row of each part's token vectors
LEXICAL = "bm25"  # folder of the BM25 index inside a generation
CURRENT = "CURRENT"
LOCK_FILE = ".build.lock"
KEEP_GENERATIONS = 2  # the live one and its predecessor, for readers that opened the old one mid-swap


class OlderFormat(RetrieverError):
    """An index an earlier retriever wrote: rebuilt on the next `ask` or `index`, never read."""


class IndexNotWritable(RetrieverError):
    """A build that could not write (no permission, a full disk); the live generation is as it was."""

    def __init__(self, root: Path, exc: OSError) -> None:
        self.read_only = exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)  # as against a full disk, say
        where = f" ({exc.filename})" if exc.filename else ""
        super().__init__(
            f"cannot write the index at {root}: {exc.strerror or exc}{where}; the index as it was is intact"
        )


@dataclass
class Manifest:
    models: list[ModelSpec]  # the first is the primary model: it sizes chunks and names the index
    chunker: dict[str, int]
    ann: dict[str, dict[str, Any]]  # matrix → its ANN index: {"kind": …, and how it searches, e.g. "nprobe"}
    files: dict[str, FileStamp]
    chunks: list[Chunk]  # what `ask` returns
    parts: list[Part]  # sub-chunks, scored inside their chunk, in chunk order
    questions: list[Chunk]  # one per titled section, for `similar`; its vector is the heading's
    chunk_question: list[int]  # row of each chunk's section in questions, or -1
    extras: list[str] = field(default_factory=list)  # further arrays by name, e.g. where each part's tokens are
    segments: list[str] = field(default_factory=list)  # token-vector files, shared by hard link across generations
    codebook: str = ""  # the array that decodes token codes (uint8 segments), kept across generations; "": none
    created_at: str = ""
    build_seconds: float = 0.0
    checksums: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # bytes of each checksummed file
    store: str = "faiss"  # which store holds the vectors: "faiss" (these files) or "milvus"

    @property
    def model(self) -> ModelSpec:
        return self.models[0]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.models, self.chunker)

    def spec_of(self, matrix: str) -> ModelSpec:
        """The model whose vectors a matrix (`m<model>.<collection>`) holds."""
        return self.models[int(matrix.split(".")[0][1:])]

    def rows(self, collection: str) -> int:
        return len({"chunks": self.chunks, "parts": self.parts, "questions": self.questions}[collection])

    def matrices(self) -> dict[str, tuple[int, int]]:
        """Name → shape of every vector matrix the index holds: one per model and collection."""
        return {
            matrix_name(i, collection): (self.rows(collection), spec.dim)
            for i, spec in enumerate(self.models)
            for collection in COLLECTIONS
        }

    def check(self) -> None:
        """Raise ValueError unless the rows point where they may: whatever the checksum, a manifest that passes
        this can never send a question out of bounds."""
        chunks, questions = len(self.chunks), len(self.questions)
        owners = np.fromiter((p.chunk for p in self.parts), dtype=np.int64, count=len(self.parts))
        if not self.models or len(self.chunk_question) != chunks:
            raise ValueError("models or chunk_question do not match the chunks")
        if chunks and not (-1 <= min(self.chunk_question) and max(self.chunk_question) < questions):
            raise ValueError("chunk_question points outside the questions")
        steps = np.diff(owners)
        if chunks != (int(owners[-1]) + 1 if len(owners) else 0) or (len(owners) and owners[0] != 0):
            raise ValueError("parts do not cover the chunks")
        if ((steps < 0) | (steps > 1)).any():
            raise ValueError("parts are not in chunk order, one or more to every chunk")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "fingerprint": self.fingerprint,
            "models": [m.as_dict() for m in self.models],
            "chunker": self.chunker,
            "ann": self.ann,
            "created_at": self.created_at,
            "build_seconds": round(self.build_seconds, 3),
            "checksums": self.checksums,
            "sizes": self.sizes,
            "files": {path: fields_of(stamp) for path, stamp in self.files.items()},
            "chunks": [chunk_json(c) for c in self.chunks],
            "parts": [fields_of(p) for p in self.parts],
            "questions": [chunk_json(c) for c in self.questions],
            "chunk_question": self.chunk_question,
            "extras": self.extras,
            "segments": self.segments,
            "codebook": self.codebook,
            "store": self.store,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            models=[ModelSpec(**m) for m in data["models"]],
            chunker=dict(data["chunker"]),
            ann=ann_records(data["ann"], len(data["models"])),
            files={path: FileStamp(**stamp) for path, stamp in data["files"].items()},
            chunks=[chunk_from_json(c) for c in data["chunks"]],
            parts=[Part(**p) for p in data["parts"]],
            questions=[chunk_from_json(c) for c in data["questions"]],
            chunk_question=[int(q) for q in data["chunk_question"]],
            extras=[str(e) for e in data["extras"]],
            segments=[str(e) for e in data["segments"]],
            codebook=str(data["codebook"]),
            created_at=str(data["created_at"]),
            build_seconds=float(data["build_seconds"]),
            checksums=dict(data["checksums"]),
            sizes={str(k): int(v) for k, v in data.get("sizes", {}).items()},  # absent before sizes were kept
            store=str(data.get("store", "faiss")),
        )


def ann_records(ann: Any, models: int) -> dict[str, dict[str, Any]]:
    if isinstance(ann, str):  # the first format-3 indexes recorded one kind for all matrices
        return {matrix_name(m, c): {"kind": ann} for m in range(models) for c in COLLECTIONS}
    return {str(name): dict(record) for name, record in ann.items()}


def matrix_name(model: int, collection: str) -> str:
    return f"m{model}.{collection}"


def fingerprint(models: list[ModelSpec], chunker: dict[str, int]) -> str:
    """What the index was built under (models, prompts, chunking): a change of any of them makes it stale."""
    blob = json.dumps({"v": VERSION, "models": [m.as_dict() for m in models], "chunker": chunker}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def chunk_json(chunk: Chunk) -> dict[str, Any]:
    return {**fields_of(chunk), "headings": list(chunk.headings), "tags": list(chunk.tags), "hash": chunk.content_hash}


def fields_of(record: Any) -> dict[str, Any]:
    """A flat dataclass's fields: `dataclasses.asdict` deep-copies each value, 1.1 s of a 10 000-note manifest."""
    return {name: getattr(record, name) for name in field_names(type(record))}


@cache
def field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(kind))


def write_json(handle: Any, data: dict[str, Any], slice_rows: int = 4096) -> None:
    """data as JSON, streamed: large lists a slice at a time through json.dumps (the C encoder). json.dump itself
    encodes in Python, ~10× slower, and one json.dumps of it all would hold a second copy of a manifest that runs
    to hundreds of MB at a million chunks."""
    handle.write("{")
    for number, (key, value) in enumerate(data.items()):
        handle.write(("," if number else "") + json.dumps(key) + ":")
        if isinstance(value, list) and len(value) > slice_rows:
            handle.write("[")
            for start in range(0, len(value), slice_rows):
                rows = json.dumps(value[start : start + slice_rows], ensure_ascii=False)[1:-1]
                handle.write(("," if start else "") + rows)
            handle.write("]")
        else:
            handle.write(json.dumps(value, ensure_ascii=False))
    handle.write("}")


def chunk_from_json(data: dict[str, Any]) -> Chunk:
    return Chunk(
        data["path"],
        tuple(data["headings"]),
        data["start_line"],
        data["end_line"],
        data["text"],
        tuple(data.get("tags", ())),
    )


@dataclass(frozen=True)
class StoredIndex:
    """A verified generation on disk, not loaded."""

    manifest: Manifest
    path: Path

    def reader(self, name: str) -> RowReader:
        return RowReader(self.path / f"{name}.npy")

    def training(self, matrix: str, spec: ModelSpec, fresh: int) -> Training | None:
        """This index's trained IVF lists for a matrix of the same model, for the next build to keep (an
        ann.Training), or None; fresh: rows of the next build that this index does not hold."""
        from .ann import IVFIndex, Training

        record = self.manifest.ann.get(matrix, {})
        if record.get("kind") != IVFIndex.kind or self.manifest.spec_of(matrix) != spec:
            return None
        return Training(self.path / f"{matrix}.faiss", int(record["nlist"]), int(record.get("unseen", 0)) + fresh)


@dataclass
class LoadedIndex(IndexView):
    """An index read from local files: vectors and token vectors memory-mapped, FAISS indexes and BM25 loaded."""

    manifest: Manifest
    vectors: dict[str, np.ndarray]  # matrix name → [rows, dim]
    ann: dict[str, Any]  # matrix name → VectorIndex
    lexical_index: Any  # LexicalIndex
    path: Path
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    segments: list[np.ndarray] = field(default_factory=list)  # token vectors, memory-mapped
    codebook: Codebook | None = None

    @property
    def generation(self) -> Path:  # type: ignore[override]
        return self.path

    def nearest(self, matrix: str, vector: np.ndarray, k: int) -> np.ndarray:
        found = self.ann[matrix].search(vector, k)[1][0]
        return found[found >= 0]

    def scores(self, matrix: str, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return as_float32(self.vectors[matrix][rows]) @ vector

    @property
    def has_tokens(self) -> bool:
        return SPANS in self.extras

    def token_scores(self, parts: np.ndarray, query_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        spans = self.extras[SPANS][parts]
        lengths = spans[:, 2] - spans[:, 1]
        blocks = [
            token_floats(self.segments[seg][start:stop], self.codebook) for seg, start, stop in spans[lengths > 0]
        ]
        gathered = np.concatenate(blocks) if blocks else np.zeros((0, self.manifest.model.dim), np.float32)
        return np.asarray(query_tokens, dtype=np.float32) @ gathered.T, lengths

    def lexical(self, question: str) -> LexicalScores:
        return self.lexical_index.score(question)


def as_float32(half: np.ndarray) -> np.ndarray:
    """numpy widens float16 an element at a time (0.8 ms for the ~1 000 token vectors of one re-rank), torch with
    SIMD (0.03 ms): torch's cast where the process has torch loaded anyway, which is never imported for this."""
    torch = sys.modules.get("torch")
    if torch is None:
        return half.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(half)).float().numpy()


def check_spans(
    spans: np.ndarray | None, parts: int, segments: list[np.ndarray], codebook: Codebook | None = None
) -> None:
    """ValueError unless every part's token rows lie inside a segment the index holds, and every segment of codes
    has the codebook that decodes it."""
    for segment in segments:
        if segment.dtype == np.uint8 and (codebook is None or segment.shape[1] != codebook.slices):
            raise ValueError("a token segment holds codes that the index's codebook does not decode")
    if spans is None:
        return
    if spans.shape != (parts, 3):
        raise ValueError(f"{SPANS} has shape {spans.shape}, not {(parts, 3)}")
    segment, start, stop = spans[:, 0], spans[:, 1], spans[:, 2]
    if parts and (segment.min() < 0 or segment.max() >= len(segments)):
        raise ValueError(f"{SPANS} names a token segment the index does not hold")
    rows = np.array([len(s) for s in segments], dtype=np.int64)
    if parts and ((start < 0) | (start > stop) | (stop > rows[segment])).any():
        raise ValueError(f"{SPANS} points outside its token segments")


def mapped(path: Path) -> np.ndarray:
    """A read-only memory map of an .npy, as a plain ndarray over it: np.memmap's own slicing costs ~5 µs a slice
    in Python, and a question slices the token vectors of every re-ranked part."""
    return np.asarray(np.load(path, allow_pickle=False, mmap_mode="r"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


HASH_ON_LOAD_BYTES = 32 << 20  # larger files are checked by size on load and hashed whole by `doctor`
_verified: dict[Path, tuple[int, int, int]] = {}  # file → (size, mtime, inode) this process hashed and found intact


def stat_key(info: os.stat_result) -> tuple[int, int, int]:
    """(size, mtime, inode): what tells that a file is still the one this process read or wrote."""
    return (info.st_size, info.st_mtime_ns, info.st_ino)


def file_state(path: Path) -> tuple[int, int, int] | None:
    try:
        return stat_key(path.stat())
    except OSError:
        return None


def remember_verified(path: Path) -> None:
    _verified[path] = stat_key(path.stat())


def intact(path: Path, checksum: str, size: int | None, full: bool) -> bool:
    """Whether a data file is what the manifest recorded. Every load checks every file's size (a truncated or
    replaced file fails at once); the hash is taken of files up to 32 MiB and of any file with no recorded size,
    since hashing a large corpus's token vectors (GBs) on every cold question would cost seconds. `doctor` and a
    full check hash everything; a file hashed once by this process is not hashed again while unchanged."""
    try:
        info = path.stat()
    except OSError:
        return False
    if size is not None and info.st_size != size:
        return False
    if _verified.get(path) == stat_key(info):
        return True
    if not full and size is not None and size > HASH_ON_LOAD_BYTES:
        return True
    if sha256_file(path) != checksum:
        return False
    remember_verified(path)
    return True


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_array(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass
class Generation:
    """A generation being written, in a hidden folder: matrices are streamed in by row, extras are named."""

    name: str
    folder: Path
    extras: set[str] = field(default_factory=set)
    segments: list[str] = field(default_factory=list)
    linked: dict[str, tuple[str, int]] = field(default_factory=dict)  # file → (checksum, size) it already had
    codebook: str = ""
    fresh: dict[str, int] = field(default_factory=dict)  # matrix → rows not copied from the previous index

    @property
    def scratch(self) -> Path:
        """Intermediate files of the build, removed before the checksums are taken."""
        return self.folder / "scratch"

    def matrix(self, name: str, dim: int, dtype: np.dtype | type = np.float32, extra: bool = False) -> RowWriter:
        if extra:
            self.extras.add(name)
        return RowWriter(self.folder / f"{name}.npy", dim, dtype)

    def segment(self, dim: int) -> RowWriter:
        """A new token-vector segment in int8 (`encode_segments` turns it into codes); immutable once the build is
        done, so later generations link it instead of copying."""
        name = f"tokens-{uuid.uuid4().hex[:12]}"
        self.segments.append(name)
        return RowWriter(self.folder / f"{name}.npy", dim, np.int8)

    def link(self, old: StoredIndex, name: str, segment: bool = True) -> None:
        """Share an old generation's segment (or codebook): a hard link, and its checksum carried over rather than
        re-hashed."""
        file = f"{name}.npy"
        os.link(old.path / file, self.folder / file)
        if segment:
            self.segments.append(name)
        self.linked[file] = (old.manifest.checksums[file], old.manifest.sizes[file])

    def encode_segments(self, old: StoredIndex | None, spec: ModelSpec) -> None:
        """This build's int8 segments as codes: under the old index's codebook where it has one for the same model,
        else one trained on them; left in int8 when they are too few to train on."""
        own = [i for i, name in enumerate(self.segments) if f"{name}.npy" not in self.linked]
        if not own:
            return
        if old is not None and old.manifest.codebook and old.manifest.models[0] == spec:
            self.link(old, old.manifest.codebook, segment=False)
            self.codebook = old.manifest.codebook
            codebook = Codebook.load(self.folder / f"{self.codebook}.npy")
        else:
            sample = np.concatenate([np.load(self.folder / f"{self.segments[i]}.npy") for i in own])
            trained = Codebook.train(token_floats(sample, None))
            if trained is None:
                return
            codebook, self.codebook = trained, f"codebook-{uuid.uuid4().hex[:12]}"
            save_array(self.folder / f"{self.codebook}.npy", codebook.stored())
        for i in own:
            path = self.folder / f"{self.segments[i]}.npy"
            save_array(path, codebook.encode(token_floats(np.load(path), None)))

    def array(self, name: str, array: np.ndarray) -> None:
        """A small extra array, written whole."""
        self.extras.add(name)
        save_array(self.folder / f"{name}.npy", array)


def write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class IndexStore:
    """The default store: an index in local files, searched with FAISS."""

    shared = False  # one machine's index: a question that finds the notes changed updates it first

    def __init__(self, root: Path, notes: Path | None = None) -> None:
        self.root = root
        self.notes = notes  # the folder it indexes, for the commands its messages give
        self.notices: list[str] = []  # what a build had to leave out (none here; see MilvusStore)
        # The manifest this store last wrote or read, with the stat of its file then. Generations never change
        # once written, so while the file is untouched a warm process (serve --watch) skips re-parsing it on the
        # next build and load: ~0.3 s each at 10 000 notes.
        self._last: tuple[Path, tuple[int, int, int] | None, Manifest] | None = None

    @property
    def local(self) -> IndexStore:
        """Where builds are written: here, the index itself."""
        return self

    def publish(self) -> bool:
        """Nothing to do: a local build is live once committed."""
        return False

    @property
    def label(self) -> str:
        return str(self.root)

    def size_bytes(self) -> int | None:
        return sum(p.stat().st_size for p in self.live_generation().rglob("*") if p.is_file())

    def index_command(self, full: bool = False) -> str:
        """The command that (re)builds this index, runnable from any folder."""
        notes = f" --notes {shlex.quote(str(self.notes))}" if self.notes is not None else ""
        return f"retriever index{' --full' if full else ''}{notes} --index {shlex.quote(str(self.root))}"

    @property
    def rebuild_hint(self) -> str:
        return f"rebuild it with `{self.index_command(full=True)}`"

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
            raise RetrieverError(f"no index at {self.root}; build it with `{self.index_command()}`")
        return gen

    def read_manifest(self) -> Manifest:
        return self._manifest(self.live_generation())

    def _manifest(self, gen: Path) -> Manifest:
        state = file_state(gen / MANIFEST)
        if self._last is not None and self._last[:2] == (gen, state):
            return self._last[2]
        manifest = self._parse_manifest(gen)
        self._last = (gen, state, manifest)
        return manifest

    def _parse_manifest(self, gen: Path) -> Manifest:
        path = gen / MANIFEST
        try:
            raw = path.read_bytes()
            data = json.loads(raw)
        except (OSError, ValueError) as exc:
            raise RetrieverError(f"index manifest at {gen} is unreadable or corrupt; {self.rebuild_hint}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RetrieverError(f"{path} is not a retriever index manifest; {self.rebuild_hint}")
        if isinstance(data.get("version"), int) and data["version"] < VERSION:
            raise OlderFormat(
                f"index at {self.root} has format version {data['version']}, older than this retriever writes "
                f"({VERSION}); {self.rebuild_hint}"
            )
        if not isinstance(data.get("version"), int) or data["version"] > VERSION:
            raise RetrieverError(
                f"index at {self.root} has format version {data.get('version')}, newer than this retriever "
                f"reads ({VERSION}); upgrade retriever or {self.rebuild_hint}"
            )
        try:
            sealed = (gen / MANIFEST_SUM).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            sealed = None
        if sealed != hashlib.sha256(raw).hexdigest():
            raise RetrieverError(f"index manifest {path} does not match its checksum (altered); {self.rebuild_hint}")
        try:
            manifest = Manifest.from_json(data)
            manifest.check()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RetrieverError(f"index manifest at {gen} is inconsistent ({exc}); {self.rebuild_hint}") from exc
        return manifest

    def verified(self, full: bool = False) -> StoredIndex:
        """The live generation with every data file checked (see `intact`) and every matrix against its shape,
        nothing loaded: what a build copies unchanged vectors from. full hashes every file, whatever its size."""
        gen = self.live_generation()
        manifest = self._manifest(gen)
        for file, checksum in manifest.checksums.items():
            if not intact(gen / file, checksum, manifest.sizes.get(file), full):
                raise RetrieverError(f"index file {gen / file} is missing or altered; {self.rebuild_hint}")
        for name, shape in manifest.matrices().items():
            if f"{name}.npy" not in manifest.checksums:
                raise RetrieverError(f"index at {self.root} lacks the checksum of {name}.npy; {self.rebuild_hint}")
            try:
                reader = RowReader(gen / f"{name}.npy")
            except (OSError, ValueError) as exc:
                raise RetrieverError(f"index file in {gen} could not be read ({exc}); {self.rebuild_hint}") from exc
            reader.close()
            if (reader.rows, reader.dim) != shape:
                raise RetrieverError(
                    f"index at {self.root} is inconsistent: {name} should be {shape} but its vectors are "
                    f"{(reader.rows, reader.dim)}; {self.rebuild_hint}"
                )
        return StoredIndex(manifest, gen)

    def load(self) -> LoadedIndex:
        from .ann import load_index
        from .lexical import LexicalIndex

        stored = self.verified()
        manifest, gen = stored.manifest, stored.path
        vectors: dict[str, np.ndarray] = {}
        anns: dict[str, Any] = {}
        for name, shape in manifest.matrices().items():
            try:
                vectors[name] = mapped(gen / f"{name}.npy")
                anns[name] = load_index(manifest.ann[name]["kind"], gen / f"{name}.faiss")
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise RetrieverError(f"index file in {gen} could not be read ({exc}); {self.rebuild_hint}") from exc
            if len(anns[name]) != shape[0]:
                raise RetrieverError(
                    f"index at {self.root} is inconsistent: {name} has {shape[0]} vectors but its ANN index "
                    f"{len(anns[name])}; {self.rebuild_hint}"
                )
        try:
            lexical = LexicalIndex.load(gen / LEXICAL)
            extras = {name: mapped(gen / f"{name}.npy") for name in manifest.extras}
            segments = [mapped(gen / f"{name}.npy") for name in manifest.segments]
            codebook = Codebook.load(gen / f"{manifest.codebook}.npy") if manifest.codebook else None
            check_spans(extras.get(SPANS), len(manifest.parts), segments, codebook)
        except (OSError, ValueError, KeyError) as exc:
            raise RetrieverError(f"index in {gen} could not be read ({exc}); {self.rebuild_hint}") from exc
        return LoadedIndex(manifest, vectors, anns, lexical, gen, extras, segments, codebook)

    @contextmanager
    def building(self) -> Iterator[Generation]:
        """A new generation to stream matrices into; `commit` makes it live. If the build fails, its folder goes;
        if the process dies, the next build's sweep removes it."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        generation = Generation(name, self.root / f".tmp-{name}")
        generation.folder.mkdir()
        generation.scratch.mkdir()
        try:
            yield generation
        except BaseException:
            shutil.rmtree(generation.folder, ignore_errors=True)
            raise

    def commit(
        self, generation: Generation, manifest: Manifest, lexical: Any, previous: StoredIndex | None = None
    ) -> Path:
        """Finish a generation (ANN indexes, BM25, checksums, manifest) and make it current; the old one stays
        readable until the pointer swap. ANN indexes keep the trained lists of `previous` where they still fit."""
        from .ann import build_index

        tmp = generation.folder
        shutil.rmtree(generation.scratch)
        manifest.extras = sorted(generation.extras)
        manifest.segments = list(generation.segments)
        manifest.codebook = generation.codebook
        for matrix, shape in manifest.matrices().items():
            vectors = RowReader(tmp / f"{matrix}.npy")
            try:
                if (vectors.rows, vectors.dim) != shape:
                    raise RetrieverError(f"internal error: {matrix} has {vectors.rows} rows, expected {shape[0]}")
                fresh = generation.fresh.get(matrix, vectors.rows)
                training = previous.training(matrix, manifest.spec_of(matrix), fresh) if previous else None
                ann = build_index(vectors, training=training)
            finally:
                vectors.close()
            manifest.ann[matrix] = ann.record()
            ann.save(tmp / f"{matrix}.faiss")
        lexical.save(tmp / LEXICAL)
        for path in sorted(tmp.rglob("*")):
            if path.is_file():
                name = path.relative_to(tmp).as_posix()
                known = generation.linked.get(name)
                manifest.checksums[name], manifest.sizes[name] = known or (sha256_file(path), path.stat().st_size)
        failpoint("writing")
        with (tmp / MANIFEST).open("w", encoding="utf-8") as handle:  # streamed: no second copy as one string
            write_json(handle, manifest.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        write_file(tmp / MANIFEST_SUM, sha256_file(tmp / MANIFEST).encode("ascii"))
        fsync_dir(tmp)
        final = self.root / generation.name
        os.rename(tmp, final)
        for name in manifest.checksums:  # hashed just now, by this process: a load here need not hash again
            remember_verified(final / name)
        self._last = (final, file_state(final / MANIFEST), manifest)
        failpoint("swap")
        pointer = self.root / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
        write_file(pointer, generation.name.encode())
        os.replace(pointer, self.root / CURRENT)
        fsync_dir(self.root)
        self.sweep()
        return self.root / generation.name

    def sweep(self) -> None:
        """Drop generations beyond the newest few and temp folders of interrupted builds.

        Only called with the build lock held, so no temp folder here belongs to a live build.
        """
        if not self.root.is_dir():
            return
        try:
            current = self.generation()
        except RetrieverError:  # a broken pointer: every generation is a candidate, the newest ones are kept
            current = None
        gens = sorted((p for p in self.root.glob("gen-*") if p != current), key=lambda p: p.stat().st_mtime)
        stale = gens[: max(len(gens) - (KEEP_GENERATIONS - 1), 0)]
        stale += [p for p in self.root.glob(".tmp-gen-*")] + [p for p in self.root.glob(f".{CURRENT}.*")]
        for path in stale:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def remove_if_empty(self) -> None:
        """The index folder, if it holds nothing but the build lock."""
        if any(p.name != LOCK_FILE for p in self.root.iterdir()):
            return
        (self.root / LOCK_FILE).unlink(missing_ok=True)
        try:
            self.root.rmdir()
        except OSError:  # another process put something there meanwhile: theirs to keep
            pass

    def lock(self, timeout: float = -1):
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / LOCK_FILE), timeout=timeout)
