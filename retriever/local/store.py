"""The local store: generations of an index on disk, one live at a time, replaced atomically.

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
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RetrieverError
from ..failpoints import failpoint
from ..index import metatable
from ..index.generation import Generation, StoredIndex
from ..index.integrity import (
    file_state,
    forget_verified,
    fsync_all,
    fsync_dir,
    intact,
    remember_verified,
    sha256_file,
    write_file,
)
from ..index.manifest import FORMAT, LEXICAL, MANIFEST, MANIFEST_SUM, SPANS, VERSION, Manifest
from ..index.metatable import Strings, read_tables, write_tables
from ..index.tokencodes import Codebook
from ..index.vectorfile import VectorReader, files_of, mapped_matrix
from ..reading.extraction_cache import FOLDER as EXTRACTED
from ..timings import phase
from .loaded import LoadedIndex, check_spans, mapped

CURRENT = "CURRENT"
LOCK_FILE = ".build.lock"
KEEP_GENERATIONS = 2  # the live one and its predecessor, for readers that opened the old one mid-swap
Check = Callable[[LoadedIndex], None]  # raises unless a loaded generation answers (the build passes selfcheck.answers)


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
            for file in metatable.files():
                if not intact(gen / file, data["checksums"][file], data["sizes"].get(file), full=False):
                    raise RetrieverError(f"index file {gen / file} is missing or altered; {self.rebuild_hint}")
            manifest = Manifest.from_header(data, read_tables(gen, Strings.from_json(data["strings"])))
            manifest.check()
        except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RetrieverError(f"index manifest at {gen} is inconsistent ({exc}); {self.rebuild_hint}") from exc
        return manifest

    def verified(self, full: bool = False, gen: Path | None = None) -> StoredIndex:
        """The live generation (or gen) with every data file checked (see `intact`) and every matrix against its
        shape, nothing loaded: what a build copies unchanged vectors from. full hashes every file, whatever its
        size."""
        gen = gen or self.live_generation()
        manifest = self._manifest(gen)
        for file, checksum in manifest.checksums.items():
            if not intact(gen / file, checksum, manifest.sizes.get(file), full):
                raise RetrieverError(f"index file {gen / file} is missing or altered; {self.rebuild_hint}")
        for name, shape in manifest.matrices().items():
            for file in files_of(name):
                if file not in manifest.checksums:
                    raise RetrieverError(f"index at {self.root} lacks the checksum of {file}; {self.rebuild_hint}")
            try:
                reader = VectorReader(gen, name)
            except (OSError, ValueError) as exc:
                raise RetrieverError(f"index file in {gen} could not be read ({exc}); {self.rebuild_hint}") from exc
            reader.close()
            if (reader.rows, reader.dim) != shape:
                raise RetrieverError(
                    f"index at {self.root} is inconsistent: {name} should be {shape} but its vectors are "
                    f"{(reader.rows, reader.dim)}; {self.rebuild_hint}"
                )
        return StoredIndex(manifest, gen)

    def load(self, gen: Path | None = None) -> LoadedIndex:
        """The live generation (or gen) loaded for questions, every file checked first."""
        from ..index.ann import load_index
        from ..index.lexical import LexicalIndex

        stored = self.verified(gen=gen)
        manifest, gen = stored.manifest, stored.path
        vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        anns: dict[str, Any] = {}
        for name, shape in manifest.matrices().items():
            try:
                vectors[name] = mapped_matrix(gen, name)
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
        self,
        generation: Generation,
        manifest: Manifest,
        lexical: Any,
        check: Check,
        previous: StoredIndex | None = None,
    ) -> Path:
        """Finish a generation (ANN indexes, BM25, checksums, manifest) and make it current once `check` passed; the
        old one stays readable until the pointer swap. ANN indexes keep the trained lists of `previous` where they
        still fit."""
        from ..index.ann import build_index

        tmp = generation.folder
        shutil.rmtree(generation.scratch)
        manifest.extras = sorted(generation.extras)
        manifest.segments = list(generation.segments)
        manifest.codebook = generation.codebook
        for matrix, shape in manifest.matrices().items():
            vectors = VectorReader(tmp, matrix)
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
        strings = write_tables(tmp, manifest.chunks, manifest.questions, manifest.chunk_question, manifest.parts)
        for path in sorted(tmp.rglob("*")):
            if path.is_file():
                name = path.relative_to(tmp).as_posix()
                known = generation.linked.get(name)
                manifest.checksums[name], manifest.sizes[name] = known or (sha256_file(path), path.stat().st_size)
        # The generation's files are written without fsync and all fsynced here at once, before the manifest names
        # them; so are FAISS's and bm25s's, which nothing fsynced before. Linked files are on disk already.
        fsync_all(path for path in tmp.rglob("*") if path.relative_to(tmp).as_posix() not in generation.linked)
        failpoint("writing")
        header = {**manifest.header(), "strings": strings.to_json()}
        write_file(tmp / MANIFEST, json.dumps(header, ensure_ascii=False).encode("utf-8"))
        write_file(tmp / MANIFEST_SUM, sha256_file(tmp / MANIFEST).encode("ascii"))
        fsync_dir(tmp)
        for name in manifest.checksums:  # hashed just now, by this process: the check's load need not hash again
            remember_verified(tmp / name)
        read = self.answering(tmp, check)
        final = self.root / generation.name
        os.rename(tmp, final)
        for name in manifest.checksums:  # the same files under their final names, for this process's next load
            forget_verified(tmp / name)
            remember_verified(final / name)
        self._last = (final, file_state(final / MANIFEST), read)  # as parsed from disk: what any reader has
        failpoint("swap")
        pointer = self.root / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
        write_file(pointer, generation.name.encode())
        os.replace(pointer, self.root / CURRENT)
        fsync_dir(self.root)
        self.sweep()
        return self.root / generation.name

    def answering(self, gen: Path, check: Check) -> Manifest:
        """A written generation loaded as a reader loads it (manifest parsed from disk, files checked, FAISS, BM25,
        token codes and codebook) and checked (asked one question: see selfcheck); its manifest as read. Else the
        generation is removed and a RetrieverError says why: CURRENT never names an index that cannot answer."""
        try:
            with phase("check (load, one question)"):
                loaded = self.load(gen)
                check(loaded)
        except Exception as exc:
            shutil.rmtree(gen, ignore_errors=True)
            self._last = None
            why = exc if isinstance(exc, RetrieverError) else f"{type(exc).__name__}: {exc}"
            raise RetrieverError(f"the index just built failed its check and was not made live: {why}") from exc
        return loaded.manifest

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
        """The index folder, if it holds nothing but the build lock and the text its scan extracted."""
        if any(p.name not in (LOCK_FILE, EXTRACTED) for p in self.root.iterdir()):
            return
        shutil.rmtree(self.root / EXTRACTED, ignore_errors=True)
        (self.root / LOCK_FILE).unlink(missing_ok=True)
        try:
            self.root.rmdir()
        except OSError:  # another process put something there meanwhile: theirs to keep
            pass

    def lock(self, timeout: float = -1):
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / LOCK_FILE), timeout=timeout)
