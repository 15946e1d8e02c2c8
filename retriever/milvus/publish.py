"""Publishing a staged build: a new collection per matrix, one for the primary model's token vectors, one for the
BM25 weights as sparse vectors and one for the manifest and vocabulary, every one flushed (sealed and indexed where
searched) before `MilvusStore.publish` moves the alias to it. A reader sent to a generation by the alias so finds
every row of it, whatever the consistency it reads at."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import time
import zlib
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import RetrieverError
from ..failpoints import failpoint
from ..index.generation import StoredIndex
from ..index.lexical import LexicalIndex
from ..index.manifest import FORMAT, LEXICAL, SPANS, VERSION, Manifest, write_json
from ..index.rowfile import Rows
from ..index.tokencodes import Codebook, int8_of, token_floats
from .connection import Connected
from .layout import BATCH, HEADER_ID, LAYOUT, PIECES_PER_PART, TOKEN_PIECE

EXACT_BELOW = 20_000  # rows: exact (FLAT) search below, HNSW above, as the FAISS store switches to IVF
HNSW_BUILD = {"M": 16, "efConstruction": 200}
HNSW_EF = 128  # raised to k (200 candidates per channel); ef 800 gained nothing through the store on a 2.3 server (recall@10 0.971 at 100k either way)
BLOB_BYTES = 60_000  # a VARCHAR holds 65 535 bytes
INDEX_TIMEOUT = float(os.environ.get("RETRIEVER_MILVUS_INDEX_TIMEOUT", "3600"))


class Publisher:
    """Writes one generation's collections from a staged build."""

    def __init__(self, store: Connected, staged: StoredIndex, gen: str) -> None:
        self.store, self.staged, self.gen = store, staged, gen
        self.client = store.client
        self.kinds: dict[str, dict[str, Any]] = {}

    def insert(self, name: str, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), BATCH):
            self.store.call(self.client.insert, name, rows[start : start + BATCH])

    def write(self) -> None:
        manifest = self.staged.manifest
        for matrix, (rows, dim) in manifest.matrices().items():
            self.matrix(matrix, rows, dim)
        if SPANS in manifest.extras:
            self.tokens(manifest)
        self.lexical()
        published = replace(manifest, store="milvus", ann=self.kinds, checksums={}, sizes={})
        self.meta(published)
        self.seal()

    def seal(self) -> None:
        """Flush and load every collection of the generation: until flushed, rows a server holds only in its
        write stream are invisible to reads at bounded consistency, and a reader sent here by the alias the moment
        it moved would find the manifest cut short (seen once in 1 477 questions asked across a publish)."""
        for collection in self.store.call(self.client.list_collections):
            if collection.startswith(f"{self.gen}__"):
                self.store.call(self.client.flush, collection, timeout=INDEX_TIMEOUT)
                self.store.call(self.client.load_collection, collection, timeout=INDEX_TIMEOUT)

    def matrix(self, matrix: str, rows: int, dim: int) -> None:
        spans = matrix == "m0.parts" and SPANS in self.staged.manifest.extras
        reader = self.staged.vectors(matrix)
        try:
            name = f"{self.gen}__{matrix.replace('.', '_')}"
            self.kinds[matrix] = write_matrix(self.store, name, reader, self.token_counts() if spans else None)
        finally:
            reader.close()
        failpoint("publishing")

    def token_counts(self) -> np.ndarray:
        spans = np.load(self.staged.path / f"{SPANS}.npy", allow_pickle=False)
        return (spans[:, 2] - spans[:, 1]).astype(np.int64)

    def tokens(self, manifest: Manifest) -> None:
        """Each part's token vectors as int8 bytes (decoded from the local store's codes), in VARCHAR pieces keyed by
        part: a question fetches ~80 pieces instead of ~5 000 vectors (each a list of Python floats in pymilvus)."""
        name = f"{self.gen}__tokens"
        create(self.store, name, schema_of(self.client, [("v", 2)], blob="text"), "v", "FLAT")
        spans = np.load(self.staged.path / f"{SPANS}.npy", allow_pickle=False)
        readers = {i: self.staged.reader(segment) for i, segment in enumerate(manifest.segments)}
        codebook = Codebook.load(self.staged.path / f"{manifest.codebook}.npy") if manifest.codebook else None
        batch: list[dict[str, Any]] = []
        try:
            for part, (segment, first, end) in enumerate(spans.tolist()):
                data = int8_of(token_floats(readers[segment].read(first, end), codebook)).tobytes()
                for seq, start in enumerate(range(0, len(data), TOKEN_PIECE)):
                    piece = base64.b64encode(data[start : start + TOKEN_PIECE]).decode("ascii")
                    batch.append({"id": part * PIECES_PER_PART + seq, "v": [0.0, 0.0], "blob": piece})
                if len(batch) >= BATCH // 8:  # pieces are up to 60 KB: a few MB per call
                    self.store.call(self.client.insert, name, batch)
                    batch = []
            if batch:
                self.store.call(self.client.insert, name, batch)
        finally:
            for reader in readers.values():
                reader.close()

    def lexical(self) -> None:
        name = f"{self.gen}__bm25"
        try:
            create(self.store, name, schema_of(self.client, [("s", 0)]), "s", "SPARSE_INVERTED_INDEX")
        except RetrieverError as exc:
            if "not supported" not in str(exc):
                raise
            self.store.call(self.client.drop_collection, name)  # a server may make the collection, then refuse
            self.kinds["bm25"] = {"kind": "none"}  # its index
            self.store.notices.append(
                f"Milvus at {self.store.label} has no sparse vectors (they came in Milvus 2.4): published without "
                "the lexical channel, so questions rank by the dense channels alone"
            )
            return
        self.kinds["bm25"] = {"kind": "milvus-sparse"}
        weights, terms, pointers = LexicalIndex.load(self.staged.path / LEXICAL).weights()
        batch = []
        for doc in range(len(pointers) - 1):
            start, stop = int(pointers[doc]), int(pointers[doc + 1])
            kept = weights[start:stop] > 0  # Milvus refuses a row with no weight: such a chunk scores 0 anyway
            if kept.any():
                batch.append(
                    {"id": doc, "s": dict(zip(terms[start:stop][kept].tolist(), weights[start:stop][kept].tolist()))}
                )
            if len(batch) >= BATCH:
                self.store.call(self.client.insert, name, batch)
                batch = []
        if batch:
            self.store.call(self.client.insert, name, batch)

    def meta(self, manifest: Manifest) -> None:
        name = f"{self.gen}__meta"
        create(self.store, name, schema_of(self.client, [("v", 2)], kind="text", seq="int", blob="text"), "v", "FLAT")
        handle = io.StringIO()
        write_json(handle, manifest.to_json())
        raw = handle.getvalue().encode("utf-8")
        vocab = LexicalIndex.load(self.staged.path / LEXICAL).vocab
        rows: list[dict[str, Any]] = []
        for kind, data in (("manifest", raw), ("vocab", json.dumps(vocab, ensure_ascii=False).encode("utf-8"))):
            rows += blob_rows(kind, data, len(rows))
        self.insert(name, rows)
        write_header(self.store, name, header_of(raw, manifest, self.staged.path.name))


def blob_rows(kind: str, data: bytes, first: int) -> list[dict[str, Any]]:
    """A document as meta-collection rows, ids from `first`: zlib, base64, cut to fit a VARCHAR each."""
    text = base64.b64encode(zlib.compress(data, 6)).decode("ascii")
    return [
        {"id": first + seq, "v": [0.0, 0.0], "kind": kind, "seq": seq, "blob": text[start : start + BLOB_BYTES]}
        for seq, start in enumerate(range(0, len(text), BLOB_BYTES))
    ]


def header_of(raw: bytes, manifest: Manifest, staged: str) -> dict[str, str]:
    """What a reader checks before trusting a generation: format, versions, the manifest's checksum."""
    return {
        "format": FORMAT,
        "version": str(VERSION),
        "layout": str(LAYOUT),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "fingerprint": manifest.fingerprint,
        "models": ",".join(m.name for m in manifest.models),
        "staged": staged,
    }


def write_header(store: Connected, collection: str, header: dict[str, str]) -> None:
    """The header as a row of the meta collection, where a server keeps it: a 2.3 server loses collection
    properties (`alter_collection_properties`) when it restarts, and its readers would then find no index."""
    [row] = blob_rows("header", json.dumps(header, sort_keys=True).encode("utf-8"), HEADER_ID)
    store.call(store.client.upsert, collection, [row])


def schema_of(client: Any, vectors: list[tuple[str, int]], **scalars: Any) -> Any:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    for name, dim in vectors:
        if dim:
            schema.add_field(name, DataType.FLOAT_VECTOR, dim=dim)
        else:
            schema.add_field(name, DataType.SPARSE_FLOAT_VECTOR)
    for name, kind in scalars.items():
        if kind == "text":
            schema.add_field(name, DataType.VARCHAR, max_length=65_535)
        else:
            schema.add_field(name, DataType.INT64)
    return schema


def create(store: Connected, name: str, schema: Any, field: str, kind: str, **params: Any) -> None:
    """A collection with its one searched field indexed by inner product."""
    index = store.client.prepare_index_params()
    index.add_index(field, index_type=kind, metric_type="IP", params=params)
    store.call(store.client.create_collection, name, schema=schema, index_params=index, timeout=INDEX_TIMEOUT)


def write_matrix(store: Connected, name: str, reader: Rows, token_counts: np.ndarray | None = None) -> dict[str, Any]:
    """One matrix as a collection, searched exactly below EXACT_BELOW rows and by HNSW above; token_counts: how
    many token vectors each row has in the tokens collection (the primary model's parts). Returns how it is
    searched, for the manifest."""
    client = store.client
    schema = schema_of(client, [("v", reader.dim)], **({"tokens": "int"} if token_counts is not None else {}))
    exact = reader.rows < EXACT_BELOW
    create(store, name, schema, "v", "FLAT" if exact else "HNSW", **({} if exact else HNSW_BUILD))
    start = 0
    for block in reader.blocks(BATCH):
        batch = [{"id": start + i, "v": vector} for i, vector in enumerate(block.astype(np.float32))]
        if token_counts is not None:
            for i, row in enumerate(batch):
                row["tokens"] = int(token_counts[start + i])
        store.call(client.insert, name, batch)
        start += len(block)
    indexed(store, name, start)
    return {"kind": "milvus-flat"} if exact else {"kind": "milvus-hnsw", **HNSW_BUILD, "ef": HNSW_EF}


def indexed(store: Connected, name: str, rows: int) -> None:
    """Wait until a server has sealed and indexed every row, then reload the collection: until then it searches
    by an interim index, and a generation must not go live below its own recall. Milvus Lite indexes as it inserts
    and has nothing to wait for."""
    store.call(store.client.flush, name, timeout=INDEX_TIMEOUT)
    deadline = time.monotonic() + INDEX_TIMEOUT
    while time.monotonic() < deadline:
        state = store.call(store.client.describe_index, name, "v")
        if "indexed_rows" not in state or (state.get("pending_index_rows", 0) == 0 and state["indexed_rows"] >= rows):
            if store.location.is_server:  # a server serves loaded segments by their interim index
                store.call(store.client.release_collection, name)  # until handed off: a reload takes the built one
                store.call(store.client.load_collection, name, timeout=INDEX_TIMEOUT)
            return
        time.sleep(1.0)
    raise RetrieverError(f"Milvus store {store.label} did not finish indexing {name} in {INDEX_TIMEOUT:.0f} s")
