"""Embedding work that outlives an interrupted build: each step of texts a build embeds is kept under the index
folder as it is done, and the next build takes those texts' vectors from there instead of embedding them again.

A build's generation is written in a temp folder that an interrupt throws away (Ctrl-C) or the next build sweeps
(SIGKILL, a power cut), and embedding is nearly all of a first build's time: 214 texts took 127 s, and all of it was
lost. So every step's results go to `<index>/checkpoint/` in plain `.npy` files, with a JSON record written last
(by rename: a step cut short leaves no record, and files without one are never read) holding each text's key and
the SHA-256 of every file. A text's key is the hash of the model's spec, the exact text with the spans pooled from
it, and whether its token vectors are kept: a vector is reused only for the very same pass under the very same
model. A record whose files do not match their hashes or shapes is ignored. The folder goes once a generation is
committed. Nothing is loaded with pickle.

A build sharded over a Ray cluster keeps its parts' tokens as codes of a codebook it trained first (`ray_build`):
that codebook is kept here too, and its digest is part of those texts' keys, so a resumed build encodes with the
same one and never reads codes of another.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..encoders import ModelSpec, Pooled, SpanEncoder, Spans
from ..failpoints import holdpoint
from ..index.integrity import fsync_dir, save_array, sha256_file, write_file
from ..index.tokencodes import Codebook, int8_of, pool_tokens
from ..reading.chunk import content_hash

FOLDER = "checkpoint"
FORMAT = 1
STEP = 32  # texts embedded between two records: at most this many are embedded again after an interrupt
Progress = Callable[[Sequence[Spans]], Callable[[int], None]]
Step = tuple[Sequence[Spans], Sequence[int]]  # texts embedded together, and how many of each text's spans are parts


@dataclass(frozen=True)
class Embedded:
    """What a build keeps of one text's pass: its vector, its spans' vectors, and each part's token vectors as
    stored (pooled, int8), or none where the model's tokens are not kept."""

    whole: np.ndarray  # [dim] float32
    spans: np.ndarray  # [spans, dim] float32
    tokens: list[np.ndarray]  # per part: [rows, dim] int8, or [rows, slices] uint8 codes (a sharded build's)

    @classmethod
    def of(cls, pooled: Pooled, parts: int, tokens: bool) -> Embedded:
        kept = [int8_of(pool_tokens(t)) for t in pooled.tokens[:parts]] if tokens else []
        whole = np.asarray(pooled.whole, np.float32)
        return cls(whole, np.asarray(pooled.spans, np.float32).reshape(-1, len(whole)), kept)


def text_key(spec: ModelSpec, item: Spans, tokens: bool) -> str:
    return content_hash(json.dumps([spec.as_dict(), item.text, item.spans, item.lead, tokens], ensure_ascii=False))


@dataclass
class Checkpoint:
    folder: Path
    keeping: bool = True  # off for a build of one step or less, which an interrupt costs no more than a step anyway

    def kept(self, wanted: set[str]) -> dict[str, Embedded]:
        """The wanted texts' results from every intact record."""
        found: dict[str, Embedded] = {}
        for record in sorted(self.folder.glob("[!.]*.json")) if self.folder.is_dir() else []:
            try:
                found |= {k: v for k, v in read_record(self.folder, record).items() if k in wanted}
            except (OSError, ValueError, KeyError, TypeError, IndexError):
                continue  # cut short or altered: those texts are embedded again
        return found

    def keep(self, keys: Sequence[str], results: Sequence[Embedded]) -> None:
        """One step's results, durable before its record names them."""
        if not self.keeping:
            return
        self.folder.mkdir(exist_ok=True)
        name = uuid.uuid4().hex[:12]
        dim = len(results[0].whole)
        arrays = {
            "whole": np.stack([r.whole for r in results]),
            "spans": np.concatenate([r.spans for r in results]),
            "tokens": np.concatenate([t for r in results for t in r.tokens] or [np.zeros((0, dim), np.int8)]),
        }
        width = arrays["tokens"].shape[1]
        files = {}
        for part, array in arrays.items():
            path = self.folder / f"{name}.{part}.npy"
            save_array(path, array)
            files[part] = sha256_file(path)
        texts = [{"key": k, "spans": len(r.spans), "tokens": [len(t) for t in r.tokens]} for k, r in zip(keys, results)]
        record = json.dumps(
            {"format": FORMAT, "name": name, "dim": dim, "width": width, "files": files, "texts": texts}
        )
        pending = self.folder / f".{name}.json"
        write_file(pending, record.encode("utf-8"))
        os.replace(pending, self.folder / f"{name}.json")
        fsync_dir(self.folder)
        holdpoint("checkpoint")

    def codebook(self, spec: ModelSpec) -> Codebook | None:
        """The token codebook an interrupted sharded build trained for this model, or None."""
        try:
            return Codebook.load(self.folder / codebook_name(spec))
        except (OSError, ValueError, EOFError):
            return None

    def keep_codebook(self, spec: ModelSpec, codebook: Codebook) -> None:
        """Kept before any record holds codes of it."""
        self.folder.mkdir(exist_ok=True)
        name = codebook_name(spec)
        pending = self.folder / f".{name}"
        save_array(pending, codebook.stored())
        os.replace(pending, self.folder / name)
        fsync_dir(self.folder)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def codebook_name(spec: ModelSpec) -> str:
    return f"codebook-{content_hash(json.dumps(spec.as_dict()))[:16]}.npy"


def read_record(folder: Path, record: Path) -> dict[str, Embedded]:
    data = json.loads(record.read_text(encoding="utf-8"))
    if data["format"] != FORMAT:
        raise ValueError("another checkpoint format")
    arrays = {}
    for part, checksum in data["files"].items():
        path = folder / f"{data['name']}.{part}.npy"
        if sha256_file(path) != checksum:
            raise ValueError(f"{path.name} does not match its checksum")
        arrays[part] = np.load(path, allow_pickle=False)
    texts, dim = data["texts"], int(data["dim"])
    width = int(data.get("width", dim))  # token codes are narrower than the vectors
    spans = np.cumsum([0] + [t["spans"] for t in texts])
    tokens = np.cumsum([0] + [n for t in texts for n in t["tokens"]])
    whole, pooled, kept = arrays["whole"], arrays["spans"], arrays["tokens"]
    if whole.shape != (len(texts), dim) or pooled.shape != (spans[-1], dim) or kept.shape != (tokens[-1], width):
        raise ValueError("shapes do not match the record")
    out, part = {}, 0
    for i, text in enumerate(texts):
        rows = []
        for _ in text["tokens"]:
            rows.append(kept[tokens[part] : tokens[part + 1]])
            part += 1
        out[text["key"]] = Embedded(whole[i], pooled[spans[i] : spans[i + 1]], rows)
    return out


@dataclass
class Resumable:
    """One model's passes for a build: texts an interrupted build already embedded come from the checkpoint,
    the rest are embedded and kept there, a step at a time."""

    encoder: SpanEncoder
    tokens: bool  # keep the parts' token vectors
    checkpoint: Checkpoint
    done: dict[str, Embedded] = field(default_factory=dict)
    codes: Codebook | None = None  # the codebook its token results are codes of; None: int8 (a local build's)

    def key(self, item: Spans) -> str:
        return text_key(self.encoder.spec, item, self.tokens)

    def embed_all(self, steps: Iterable[Step], progress: Progress) -> Iterator[list[Embedded]]:
        """Each step's results, in order, a step at a time (a sharded build keeps several steps in flight)."""
        for items, parts in steps:
            yield self.embed(items, parts, progress)

    def embed(self, items: Sequence[Spans], parts: Sequence[int], progress: Progress) -> list[Embedded]:
        """Each item's results in order; parts: how many of its spans are parts (their tokens are kept); progress
        makes the progress callback of the texts actually embedded."""
        todo = self.todo(items)
        batch = [items[i] for i in todo]
        pooled = self.encoder.encode_spans(batch, progress(batch), self.tokens) if todo else []
        return self.merge(items, todo, [Embedded.of(p, parts[i], self.tokens) for i, p in zip(todo, pooled)])

    def todo(self, items: Sequence[Spans]) -> list[int]:
        """Which of the items no interrupted build embedded."""
        return [i for i, item in enumerate(items) if self.key(item) not in self.done]

    def merge(self, items: Sequence[Spans], todo: Sequence[int], fresh: Sequence[Embedded]) -> list[Embedded]:
        """The step's results in item order, the fresh ones kept in the checkpoint first."""
        keys = [self.key(item) for item in items]
        if fresh:
            self.checkpoint.keep([keys[i] for i in todo], fresh)
        new = iter(fresh)
        return [self.done[key] if key in self.done else next(new) for key in keys]
