"""One index generation on disk: being written (`Generation`), or written and verified (`StoredIndex`).

A generation is immutable once committed; token segments and the codebook are shared with later generations by hard
link, never copied or changed.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..encoders.base import ModelSpec
from ..timings import phase
from .integrity import save_array
from .manifest import Manifest
from .rowfile import RowReader, RowWriter
from .tokencodes import Codebook, token_floats, training_sample
from .vectorfile import VectorReader, VectorWriter

if TYPE_CHECKING:  # ann imports faiss, which only builds and loads need
    from .ann import Training


@dataclass(frozen=True)
class StoredIndex:
    """A verified generation on disk, not loaded."""

    manifest: Manifest
    path: Path

    def reader(self, name: str) -> RowReader:
        """A token segment or an extra array, as stored."""
        return RowReader(self.path / f"{name}.npy")

    def vectors(self, matrix: str) -> VectorReader:
        """A vector matrix, as float rows."""
        return VectorReader(self.path, matrix)

    def training(self, matrix: str, spec: ModelSpec, fresh: int) -> Training | None:
        """This index's trained IVF lists for a matrix of the same model, for the next build to keep (an
        ann.Training), or None; fresh: rows of the next build that this index does not hold."""
        from .ann import IVFIndex, Training

        record = self.manifest.ann.get(matrix, {})
        if record.get("kind") != IVFIndex.kind or self.manifest.spec_of(matrix) != spec:
            return None
        return Training(self.path / f"{matrix}.faiss", int(record["nlist"]), int(record.get("unseen", 0)) + fresh)

    def token_codebook(self, spec: ModelSpec) -> str:
        """The codebook a next build with spec as its first model keeps for its token codes, or "" for none."""
        return self.manifest.codebook if self.manifest.codebook and self.manifest.models[0] == spec else ""


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
    coded: set[str] = field(default_factory=set)  # segments written as codes already (`segment`)
    codes: Codebook | None = None  # the codebook those codes are of

    @property
    def scratch(self) -> Path:
        """Intermediate files of the build, removed before the checksums are taken."""
        return self.folder / "scratch"

    def matrix(self, name: str, dim: int) -> VectorWriter:
        """A vector matrix, streamed in by row and stored quantised (see vectorfile)."""
        return VectorWriter(self.folder, name, dim)

    def segment(self, width: int, codes: Codebook | None = None) -> RowWriter:
        """A new token-vector segment in int8 (`encode_segments` turns it into codes), or of codes of `codes` where
        they come encoded (a Ray build's actors encode their own); immutable once the build is done, so later
        generations link it instead of copying."""
        name = f"tokens-{uuid.uuid4().hex[:12]}"
        self.segments.append(name)
        if codes is not None:
            self.coded.add(name)
            self.codes = codes
        return RowWriter(self.folder / f"{name}.npy", width, np.int8 if codes is None else np.uint8, durable=False)

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
        else the one segments written as codes were encoded with, else one trained on them; left in int8 when they are
        too few to train on. The old codebook comes along whenever this generation holds any segment, also when all
        of them are linked from the old index (a build after a note was deleted, renamed or copied embeds nothing):
        linked codes need it to decode. A build that writes codes encodes them with that old codebook where there is
        one (`token_codebook`)."""
        own = [i for i, name in enumerate(self.segments) if f"{name}.npy" not in self.linked and name not in self.coded]
        if old is not None and old.token_codebook(spec) and self.segments:
            self.link(old, old.manifest.codebook, segment=False)
            self.codebook = old.manifest.codebook
            codebook = Codebook.load(self.folder / f"{self.codebook}.npy")
        elif self.codes is not None:
            codebook = self.new_codebook(self.codes)
        elif not own:
            return
        else:
            rows = np.concatenate([np.load(self.folder / f"{self.segments[i]}.npy", mmap_mode="r") for i in own])
            with phase("codebook"):
                trained = Codebook.train(token_floats(training_sample(rows), None))
            if trained is None:
                return
            codebook = self.new_codebook(trained)
        for i in own:
            path = self.folder / f"{self.segments[i]}.npy"
            save_array(path, codebook.encode(token_floats(np.load(path), None)), durable=False)

    def new_codebook(self, codebook: Codebook) -> Codebook:
        """Saved as this generation's, under a name of its own (later generations link it by that name)."""
        self.codebook = f"codebook-{uuid.uuid4().hex[:12]}"
        save_array(self.folder / f"{self.codebook}.npy", codebook.stored(), durable=False)
        return codebook

    def array(self, name: str, array: np.ndarray) -> None:
        """A small extra array, written whole."""
        self.extras.add(name)
        save_array(self.folder / f"{name}.npy", array, durable=False)
