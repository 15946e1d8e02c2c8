"""The index in Milvus: everything a question reads lives in one set of collections per generation, so any number
of `retriever serve` processes on other machines can answer from it with no local files.

A build is staged locally first (the same incremental, content-addressed build as the default store, in the
`--index` folder), then published: a new collection per matrix, one for the primary model's token vectors, one for
the BM25 weights as sparse vectors and one for the manifest and vocabulary, and finally the alias `NAME` is moved
to the new generation's manifest collection. Readers resolve the alias once per question, so they see the old or
the new index whole, as with local files' CURRENT pointer. One writer at a time: a `NAME__lock` collection is
created before anything is written (creating a collection that exists fails, so it works as a mutex).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
import shlex
import socket
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .errors import RetrieverError
from .failpoints import failpoint
from .generation import StoredIndex
from .lexical import LexicalIndex, term_ids
from .manifest import FORMAT, LEXICAL, SPANS, VERSION, Manifest, write_json
from .rowfile import RowReader
from .store import IndexStore
from .tokencodes import Codebook, int8_of, token_floats
from .vectorstore import MILVUS_SCHEME, IndexView

LAYOUT = 3  # of the collections, beside the manifest's VERSION; 2: token vectors as pieces per part; 3: in int8
TOKEN_ENV = "RETRIEVER_MILVUS_TOKEN"  # "user:password" or an API key; never written anywhere
EXACT_BELOW = 20_000  # rows: exact (FLAT) search below, HNSW above, as the FAISS store switches to IVF
HNSW_BUILD = {"M": 16, "efConstruction": 200}
HNSW_EF = 128  # raised to k (200 candidates per channel); ef 800 gained nothing through the store on a 2.3 server (recall@10 0.971 at 100k either way)
TOKEN_PIECE = 45_000  # bytes of int8 token vectors per VARCHAR row: 60 000 characters in base64
PIECES_PER_PART = 64  # a part's pieces are rows part·64 … part·64 + 63: room for 2.8 MB, 1 400 tokens at 1 024d
MAX_LIMIT = 16_384  # Milvus's cap on a search's k
BATCH = 2048  # rows per insert or query call; Milvus caps a call's message at 64 MiB and a query at 16 384 rows
BLOB_BYTES = 60_000  # a VARCHAR holds 65 535 bytes
KEEP_GENERATIONS = 2
LOCK_POLL = 1.0
INDEX_TIMEOUT = float(os.environ.get("RETRIEVER_MILVUS_INDEX_TIMEOUT", "3600"))
LOCK_TIMEOUT = float(os.environ.get("RETRIEVER_LOCK_TIMEOUT", "600"))


@dataclass(frozen=True)
class Location:
    uri: str  # what MilvusClient connects to: http://host:port, or a Milvus Lite file
    name: str  # the alias readers resolve; generations are collections named NAME__g…
    label: str  # how messages name it: the URL or file as the user gave it

    @classmethod
    def parse(cls, where: str) -> Location:
        if where.startswith(MILVUS_SCHEME):
            parts = urlsplit(where)
            name = parts.path.strip("/")
            try:
                port = parts.port  # urlsplit checks it only when asked: a word or 99999 raises here
            except ValueError:
                port = None
            if not parts.hostname or not port or not name:
                raise RetrieverError(f"store {where!r} should look like milvus://HOST:PORT/NAME (PORT from 1 to 65535)")
            return cls(f"http://{parts.hostname}:{port}", checked_name(name, where), where)
        path = Path(where).expanduser().resolve()
        return cls(str(path), checked_name(re.sub(r"\W", "_", path.stem, flags=re.ASCII) or "retriever", where), where)


def checked_name(name: str, where: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", name) or "__" in name:
        raise RetrieverError(
            f"store {where!r}: the collection name {name!r} must be letters, digits and single underscores"
        )
    return name


def quiet_pymilvus() -> None:
    """pymilvus logs every failed call at ERROR on stderr, and sets its loggers' levels on import; the one line
    that says what to do is ours to print."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC's C core logs keepalive chatter with Milvus Lite on stderr
    try:
        import pymilvus  # noqa: F401  (its import configures the loggers this then quiets)
    except ImportError as exc:
        raise RetrieverError(
            "a Milvus store needs the milvus extra: pip install 'pymilvus>=3,<4' 'milvus-lite>=3.2,<4' "
            f"(or install retriever with [milvus]); {exc}"
        ) from exc

    try:
        import milvus_lite.server_manager  # noqa: F401  (logs a traceback when a file is locked)
    except ImportError:  # a server-only install
        pass
    for name in [n for n in logging.root.manager.loggerDict if n.startswith(("pymilvus", "milvus_lite", "grpc"))]:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def connect(location: Location) -> Any:
    quiet_pymilvus()
    from pymilvus import MilvusClient

    token = os.environ.get(TOKEN_ENV, "")
    if not location.uri.startswith("http"):
        Path(location.uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        return MilvusClient(location.uri, token=token, timeout=10)
    except Exception as exc:  # pymilvus raises its own types, and grpc's, for the same failures
        raise unreachable(location, exc) from exc


def unreachable(location: Location, exc: BaseException) -> RetrieverError:
    reason = str(getattr(exc, "message", None) or exc or type(exc).__name__)
    lowered = reason.lower()
    if "open local milvus failed" in lowered:
        hint = "Milvus Lite serves one process at a time: stop the other one, or use a Milvus server to share"
    elif any(word in lowered for word in ("auth", "denied", "token", "password", "credential")):
        hint = f"check the credentials in {TOKEN_ENV} (user:password or an API key)"
    elif "connect" in lowered or "unavailable" in lowered:
        hint = f"check that Milvus runs there and {TOKEN_ENV} holds its credentials"
    else:
        hint = "`retriever doctor` with the same --store tells what to do"
    return RetrieverError(f"cannot use Milvus store {location.label}: {reason.splitlines()[0][:300]}; {hint}")


def generation_id(staged: str) -> str:
    """Collection-name form of a staged generation `gen-20261203T062500-abcd1234`."""
    return "g" + re.sub(r"\W", "_", staged.removeprefix("gen-"), flags=re.ASCII)


class MilvusStore:
    """A Milvus collection set, staged through a local `IndexStore`. It offers what `Retriever` uses of a store."""

    shared = True  # readers on other machines: a question never rebuilds it, `retriever index` does

    def __init__(self, where: str, local: IndexStore) -> None:
        self.location = Location.parse(where)
        self.local = local
        self.root = local.root
        self.notes = local.notes
        self.label = self.location.label
        self.notices: list[str] = []  # what a publish had to leave out, for the user to hear of
        self._client: Any = None
        self._manifests: dict[str, Manifest] = {}

    # -- what Retriever asks of a store ----------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.location)
        return self._client

    def index_command(self, full: bool = False) -> str:
        return f"{self.local.index_command(full)} --store {shlex.quote(self.location.label)}"

    @property
    def rebuild_hint(self) -> str:
        return f"rebuild it with `{self.index_command(full=True)}`"

    def generation(self) -> str | None:
        """The live generation's manifest collection, or None when nothing was published yet."""
        try:
            return str(self.call(self.client.describe_alias, self.location.name)["collection_name"])
        except MissingAlias:
            return None

    def exists(self) -> bool:
        return self.generation() is not None

    def live_generation(self) -> str:
        gen = self.generation()
        if gen is None:
            raise RetrieverError(
                f"no index in Milvus store {self.location.label}; build it with `{self.index_command()}`"
            )
        return gen

    def read_manifest(self) -> Manifest:
        return self.manifest_of(self.live_generation())

    def verified(self, full: bool = False) -> StoredIndex:
        """The staged build this machine published from: what the next build reuses vectors of."""
        return self.local.verified(full)

    def load(self) -> MilvusIndex:
        gen = self.live_generation()
        manifest = self.manifest_of(gen)
        prefix = gen.removesuffix("__meta")
        for collection in self.call(self.client.list_collections):  # a no-op where a server holds them loaded
            if collection.startswith(f"{prefix}__"):
                self.call(self.client.load_collection, collection)
        vocab = json.loads(self.blob(gen, "vocab"))
        return MilvusIndex(self, gen, manifest, {str(k): int(v) for k, v in vocab.items()})

    def close(self) -> None:
        """Let go of the connection, and of a Milvus Lite file, which one process at a time may hold open."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if not self.location.uri.startswith("http"):
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.location.uri)

    def size_bytes(self) -> int | None:
        return None  # the server's to tell: Milvus reports rows, not bytes

    def lock(self, timeout: float = -1):
        return self.local.lock(timeout)

    def sweep(self) -> None:
        self.local.sweep()

    def remove_if_empty(self) -> None:
        self.local.remove_if_empty()

    # -- reading -----------------------------------------------------------------------------------------------
    def call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """A pymilvus call, its failures as one line naming the store."""
        from pymilvus.exceptions import MilvusException

        try:
            return method(*args, **kwargs)
        except MilvusException as exc:
            said = str(exc.message)
            if "alias" in said and ("not exist" in said or "not found" in said):  # Lite and servers word it apart
                raise MissingAlias(str(exc.message)) from exc
            raise unreachable(self.location, exc) from exc
        except Exception as exc:
            raise unreachable(self.location, exc) from exc

    def properties(self, collection: str) -> dict[str, str]:
        described = self.call(self.client.describe_collection, collection)
        return {str(k): str(v) for k, v in (described.get("properties") or {}).items()}

    def manifest_of(self, gen: str) -> Manifest:
        if gen in self._manifests:
            return self._manifests[gen]
        props = self.properties(gen)
        if props.get("retriever.format") != FORMAT:
            raise RetrieverError(
                f"Milvus store {self.location.label} holds no retriever index under its alias; {self.rebuild_hint}"
            )
        found = f"{props.get('retriever.version')}/{props.get('retriever.layout')}"
        if found != f"{VERSION}/{LAYOUT}":
            raise RetrieverError(
                f"Milvus store {self.label} has index format {found}, this retriever reads {VERSION}/{LAYOUT}; "
                f"{self.rebuild_hint}"
            )
        raw = self.blob(gen, "manifest")
        if hashlib.sha256(raw).hexdigest() != props.get("retriever.sha256"):
            raise RetrieverError(
                f"the manifest in Milvus store {self.location.label} does not match its checksum; {self.rebuild_hint}"
            )
        try:
            manifest = Manifest.from_json(json.loads(raw))
            manifest.check()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RetrieverError(
                f"the manifest in Milvus store {self.location.label} is inconsistent ({exc}); {self.rebuild_hint}"
            ) from exc
        if manifest.store != "milvus":
            raise RetrieverError(
                f"Milvus store {self.location.label} holds a manifest of a {manifest.store} index; {self.rebuild_hint}"
            )
        self._manifests = {gen: manifest}
        return manifest

    def blob(self, gen: str, kind: str) -> bytes:
        """A document stored in the manifest collection: zlib, base64, cut into VARCHAR rows."""
        self.call(self.client.load_collection, gen)
        rows = self.call(
            self.client.query, gen, filter=f'kind == "{kind}"', output_fields=["seq", "blob"], limit=16_384
        )
        text = "".join(r["blob"] for r in sorted(rows, key=lambda r: r["seq"]))
        try:
            return zlib.decompress(base64.b64decode(text))
        except (ValueError, zlib.error) as exc:
            raise RetrieverError(
                f"the {kind} in Milvus store {self.location.label} is corrupt; {self.rebuild_hint}"
            ) from exc

    # -- publishing --------------------------------------------------------------------------------------------
    def publish(self) -> bool:
        """Make the staged build live in Milvus, unless it already is; True when a new generation was written."""
        staged = self.local.verified()
        gen = f"{self.location.name}__{generation_id(staged.path.name)}_l{LAYOUT}"  # a new layout: republished
        live = self.generation()
        if live == f"{gen}__meta":
            return False
        with self.writer_lock():
            self.drop_generations(keep={(live or "").removesuffix("__meta")}, only=gen)  # a killed publish's remains
            Publisher(self, staged, gen).write()
            failpoint("alias")
            if live is None:
                self.call(self.client.create_alias, f"{gen}__meta", self.location.name)
            else:
                self.call(self.client.alter_alias, f"{gen}__meta", self.location.name)
            self.drop_generations(keep={gen, (live or "").removesuffix("__meta")})
        return True

    @property
    def lock_name(self) -> str:
        return f"{self.location.name}__lock"

    def writer_lock(self) -> Any:
        from contextlib import contextmanager

        @contextmanager
        def held() -> Iterator[None]:
            waited = time.monotonic()
            while not self.try_lock():
                if time.monotonic() - waited > LOCK_TIMEOUT:
                    raise RetrieverError(
                        f"another build is writing to Milvus store {self.location.label} after {LOCK_TIMEOUT:.0f} s; "
                        f"if none is running, drop the collection {self.lock_name} and build again"
                    )
                time.sleep(LOCK_POLL)
            try:
                yield
            finally:
                self.call(self.client.drop_collection, self.lock_name)

        return held()

    def try_lock(self) -> bool:
        from pymilvus.exceptions import MilvusException

        schema = schema_of(self.client, [("v", 2)])
        try:
            self.client.create_collection(self.lock_name, schema=schema)
        except MilvusException as exc:
            if "already exist" not in str(exc.message):
                raise unreachable(self.location, exc) from exc
            if self.holder_died():
                self.call(self.client.drop_collection, self.lock_name)
            return False
        self.call(
            self.client.alter_collection_properties,
            self.lock_name,
            properties={"retriever.holder": f"{socket.gethostname()}:{os.getpid()}"},
        )
        return True

    def holder_died(self) -> bool:
        """Whether the lock was left by a build on this machine that no longer runs (killed, or the machine
        restarted): then it is taken over. A holder on another machine cannot be checked from here."""
        holder = self.properties(self.lock_name).get("retriever.holder", "")
        host, _, pid = holder.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, as another user
            return False
        return False

    def drop_generations(self, keep: set[str], only: str | None = None) -> None:
        """Every generation (or only the one named) but those kept: older ones, and the remains of a publish that
        died half-way."""
        prefix = f"{only}__" if only else f"{self.location.name}__g"
        for name in self.call(self.client.list_collections):
            if name.startswith(prefix) and name.rsplit("__", 1)[0] not in keep:
                self.call(self.client.drop_collection, name)


class MissingAlias(RetrieverError):
    """Nothing was published under the store's name yet."""


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


def create(store: MilvusStore, name: str, schema: Any, field: str, kind: str, **params: Any) -> None:
    """A collection with its one searched field indexed by inner product."""
    index = store.client.prepare_index_params()
    index.add_index(field, index_type=kind, metric_type="IP", params=params)
    store.call(store.client.create_collection, name, schema=schema, index_params=index)


def write_matrix(
    store: MilvusStore, name: str, reader: RowReader, token_counts: np.ndarray | None = None
) -> dict[str, Any]:
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


def indexed(store: MilvusStore, name: str, rows: int) -> None:
    """Wait until a server has sealed and indexed every row, then reload the collection: until then it searches
    by an interim index, and a generation must not go live below its own recall. Milvus Lite indexes as it inserts
    and has nothing to wait for."""
    store.call(store.client.flush, name)
    deadline = time.monotonic() + INDEX_TIMEOUT
    while time.monotonic() < deadline:
        state = store.call(store.client.describe_index, name, "v")
        if "indexed_rows" not in state or (state.get("pending_index_rows", 0) == 0 and state["indexed_rows"] >= rows):
            if store.location.uri.startswith("http"):  # a server serves loaded segments by their interim index
                store.call(store.client.release_collection, name)  # until handed off: a reload takes the built one
                store.call(store.client.load_collection, name)
            return
        time.sleep(1.0)
    raise RetrieverError(f"Milvus store {store.label} did not finish indexing {name} in {INDEX_TIMEOUT:.0f} s")


def search_matrix(store: MilvusStore, name: str, record: dict[str, Any], vector: np.ndarray, k: int) -> np.ndarray:
    """Rows nearest to one vector in a collection write_matrix made, as its record says to search it."""
    params = {"ef": max(int(record["ef"]), k)} if "ef" in record else {}
    found = store.call(
        store.client.search,
        name,
        data=[vector.tolist()],
        anns_field="v",
        limit=k,
        search_params={"metric_type": "IP", "params": params},
    )
    return np.array([hit["id"] for hit in found[0]], dtype=np.int64)


class Publisher:
    """Writes one generation's collections from a staged build."""

    def __init__(self, store: MilvusStore, staged: StoredIndex, gen: str) -> None:
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

    def matrix(self, matrix: str, rows: int, dim: int) -> None:
        spans = matrix == "m0.parts" and SPANS in self.staged.manifest.extras
        reader = self.staged.reader(matrix)
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
            text = base64.b64encode(zlib.compress(data, 6)).decode("ascii")
            for seq, start in enumerate(range(0, len(text), BLOB_BYTES)):
                rows.append(
                    {
                        "id": len(rows),
                        "v": [0.0, 0.0],
                        "kind": kind,
                        "seq": seq,
                        "blob": text[start : start + BLOB_BYTES],
                    }
                )
        self.insert(name, rows)
        models = ",".join(m.name for m in manifest.models)
        properties = {
            "retriever.format": FORMAT,
            "retriever.version": str(VERSION),
            "retriever.layout": str(LAYOUT),
            "retriever.sha256": hashlib.sha256(raw).hexdigest(),
            "retriever.fingerprint": manifest.fingerprint,
            "retriever.models": models,
            "retriever.staged": self.staged.path.name,
        }
        self.store.call(self.client.alter_collection_properties, name, properties=properties)
        for collection in self.store.call(self.client.list_collections):
            if collection.startswith(f"{self.gen}__"):
                self.store.call(self.client.load_collection, collection)


class MilvusIndex(IndexView):
    """A published generation, read through queries: nothing but the manifest and vocabulary is held locally."""

    def __init__(self, store: MilvusStore, gen: str, manifest: Manifest, vocab: dict[str, int]) -> None:
        self.store, self.generation, self.manifest, self.vocab = store, gen, manifest, vocab
        self.prefix = gen.removesuffix("__meta")

    def collection(self, matrix: str) -> str:
        return f"{self.prefix}__{matrix.replace('.', '_')}"

    def nearest(self, matrix: str, vector: np.ndarray, k: int) -> np.ndarray:
        return search_matrix(self.store, self.collection(matrix), self.manifest.ann.get(matrix, {}), vector[0], k)

    def fetch(self, collection: str, rows: np.ndarray, fields: list[str]) -> dict[int, dict[str, Any]]:
        wanted = np.unique(rows).tolist()
        got: dict[int, dict[str, Any]] = {}
        for start in range(0, len(wanted), BATCH):
            for hit in self.store.call(
                self.store.client.query, collection, ids=wanted[start : start + BATCH], output_fields=fields
            ):
                got[int(hit["id"])] = hit
        return got

    def scored(self, collection: str, field: str, queries: list[Any], rows: np.ndarray, params: dict) -> np.ndarray:
        """Inner products of each query with each of these rows, [len(queries), len(rows)], taken by the server as a
        search restricted to the rows: only scores cross the wire, never vectors (fetching the vectors of a
        question's ~2 000 candidate parts instead cost most of its time). A row the search leaves out is nan."""
        wanted = np.unique(rows)
        column = {int(r): i for i, r in enumerate(wanted.tolist())}
        out = np.full((len(queries), len(wanted)), np.nan, dtype=np.float32)
        for start in range(0, len(wanted), MAX_LIMIT):
            some = wanted[start : start + MAX_LIMIT].tolist()
            found = self.store.call(
                self.store.client.search,
                collection,
                data=queries,
                anns_field=field,
                limit=len(some),
                filter=f"id in {some}",
                search_params={
                    "metric_type": "IP",
                    "params": {**params, **({"ef": len(some)} if "ef" in params else {})},
                },
            )
            for q, hits in enumerate(found):
                for hit in hits:
                    out[q, column[int(hit["id"])]] = hit["distance"]
        return out[:, np.searchsorted(wanted, rows)]

    def vectors(self, collection: str, rows: np.ndarray, dim: int) -> np.ndarray:
        got = self.fetch(collection, rows, ["v"])
        try:
            return np.array([got[int(r)]["v"] for r in rows], dtype=np.float32).reshape(len(rows), dim)
        except KeyError as exc:
            raise RetrieverError(
                f"Milvus store {self.store.label} lacks row {exc} of {collection}; {self.store.rebuild_hint}"
            ) from exc

    def exact(self, collection: str, queries: np.ndarray, rows: np.ndarray, params: dict) -> np.ndarray:
        """scored, with any row an approximate index skipped computed here from its fetched vector."""
        sims = self.scored(collection, "v", queries.tolist(), rows, params)
        missing = np.isnan(sims).any(axis=0)
        if missing.any():
            sims[:, missing] = queries @ self.vectors(collection, rows[missing], queries.shape[1]).T
        return sims

    def scores(self, matrix: str, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if not len(rows):
            return np.zeros(0, dtype=np.float32)
        record = self.manifest.ann.get(matrix, {})
        params = {"ef": int(record["ef"])} if "ef" in record else {}
        return self.exact(self.collection(matrix), np.asarray(vector, np.float32).reshape(1, -1), rows, params)[0]

    @property
    def has_tokens(self) -> bool:
        return SPANS in self.manifest.extras

    def token_scores(self, parts: np.ndarray, query_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fetched and scored here: a server-side search per question token (~16) over a re-rank's ~5 000 token
        rows cost Milvus Lite seconds, and fetching them as vectors (lists of Python floats) ~0.5 s; their int8
        bytes, a few pieces per part, decode in milliseconds."""
        counts = self.fetch(self.collection("m0.parts"), parts, ["tokens"])
        lengths = np.array([counts[int(p)]["tokens"] for p in parts], dtype=np.int64)
        dim = self.manifest.model.dim
        ids = [
            int(p) * PIECES_PER_PART + seq
            for p, n in zip(parts, lengths)
            for seq in range(-(-int(n) * dim // TOKEN_PIECE))
        ]
        got = self.fetch(f"{self.prefix}__tokens", np.array(ids, dtype=np.int64), ["blob"]) if ids else {}
        try:
            data = b"".join(base64.b64decode(got[i]["blob"]) for i in ids)
        except KeyError as exc:
            raise RetrieverError(
                f"Milvus store {self.store.label} lacks token piece {exc}; {self.store.rebuild_hint}"
            ) from exc
        tokens = np.frombuffer(data, dtype=np.int8).reshape(-1, dim)
        return np.asarray(query_tokens, dtype=np.float32) @ token_floats(tokens, None).T, lengths

    def lexical(self, question: str) -> SparseScores | None:
        if self.manifest.ann.get("bm25", {}).get("kind") == "none":
            return None
        ids, coverage = term_ids(self.vocab, question)
        return SparseScores(self, Counter(ids), coverage)


@dataclass
class SparseScores:
    """BM25 of one question from the sparse collection: a search for the best rows, a dot product for the rest.
    The stored weights are bm25s's own, so both equal the local store's scores."""

    index: MilvusIndex
    terms: Counter[int]  # the question's term ids, with repeats counted
    coverage: float

    @property
    def collection(self) -> str:
        return f"{self.index.prefix}__bm25"

    def top(self, n: int) -> np.ndarray:
        total = len(self.index.manifest.chunks)
        scored: list[tuple[float, int]] = []
        if self.terms:
            query = {int(t): float(c) for t, c in self.terms.items()}
            found = self.index.store.call(
                self.index.store.client.search,
                self.collection,
                data=[query],
                anns_field="s",
                limit=min(n, total),
                search_params={"metric_type": "IP", "params": {"drop_ratio_search": 0.0}},
            )
            scored = sorted((-float(hit["distance"]), int(hit["id"])) for hit in found[0])
        rows = [row for _, row in scored]
        if len(rows) < min(n, total):  # rows sharing no term score 0, and come in row order, as locally
            taken = set(rows)
            rows += [r for r in range(total) if r not in taken][: min(n, total) - len(rows)]
        return np.array(rows, dtype=np.int64)

    def of(self, rows: np.ndarray) -> np.ndarray:
        if not self.terms or not len(rows):
            return np.zeros(len(rows), dtype=np.float32)
        query = {int(t): float(c) for t, c in self.terms.items()}
        sims = self.index.scored(self.collection, "s", [query], rows, {"drop_ratio_search": 0.0})[0]
        return np.nan_to_num(sims, nan=0.0)  # a chunk sharing no term with the question is not returned: it scores 0
