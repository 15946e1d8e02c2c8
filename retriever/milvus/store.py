"""The index in Milvus: everything a question reads lives in one set of collections per generation, so any number
of `retriever serve` processes on other machines can answer from it with no local files.

A build is staged locally first (the same incremental, content-addressed build as the default store, in the
`--index` folder), then published (`publish`), and finally the alias `NAME` is moved to the new generation's
manifest collection. Readers resolve the alias once per question (`index` reads a generation), so they see
the old or the new index whole, as with local files' CURRENT pointer. One writer at a time (`lock`); where
the store is and how to reach it is `connection`'s.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
import zlib
from contextlib import suppress
from pathlib import Path
from typing import Any

from ..errors import RetrieverError, StaleRead
from ..failpoints import failpoint
from ..index.generation import StoredIndex
from ..index.manifest import FORMAT, SPANS, VERSION, Manifest
from ..local.store import IndexStore
from .connection import StoreUnreachable, connect, failure
from .index import MilvusIndex
from .layout import LAYOUT, MAX_LIMIT
from .location import Location
from .lock import Holder, WriterLock, drop_lock, lock_holder
from .publish import Publisher, header_of, write_header

MISSING = 100  # Milvus's code for a collection (Lite: or an alias) that does not exist
MISSING_ALIAS = 1600  # a 2.3 server's, for an alias
NOT_LOADED = 101  # a collection released, or not yet loaded again by a restarted server


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
        self._writer: WriterLock | None = None

    # -- what Retriever asks of a store ----------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.location)
        return self._client

    def index_command(self, full: bool = False) -> str:
        return f"{self.local.index_command(full)} --store {shlex.quote(self.label)}"

    @property
    def release_command(self) -> str:
        return f"retriever doctor --store {shlex.quote(self.label)} --release-lock"

    @property
    def rebuild_hint(self) -> str:
        return f"rebuild it with `{self.index_command(full=True)}`"

    def generation(self) -> str | None:
        """The live generation's manifest collection, or None when nothing was published yet (nor, for Milvus
        Lite, a database made: connecting would create an empty one wherever a reader pointed)."""
        if not self.location.is_server and not Path(self.location.uri).exists():
            return None
        try:
            return str(self.call(self.client.describe_alias, self.location.name)["collection_name"])
        except MissingAlias:
            return None

    def exists(self) -> bool:
        return self.generation() is not None

    def live_generation(self) -> str:
        gen = self.generation()
        if gen is None:
            raise RetrieverError(f"no index in Milvus store {self.label}; build it with `{self.index_command()}`")
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
        self.drop_client()
        if not self.location.is_server:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.location.uri)

    def size_bytes(self) -> int | None:
        return None  # the server's to tell: Milvus reports rows, not bytes

    def lock(self, timeout: float = -1) -> WriterLock:
        """The local build lock and the store's writer lock, taken in that order (acquire takes the timeout)."""
        self._writer = WriterLock(self, self.local.lock(timeout))
        return self._writer

    def sweep(self) -> None:
        self.local.sweep()

    def remove_if_empty(self) -> None:
        self.local.remove_if_empty()

    # -- the writer lock, as doctor shows and releases it -------------------------------------------------------
    def lock_holder(self) -> Holder | None:
        return lock_holder(self)

    def release_lock(self) -> Holder | None:
        """Drop the writer lock of a build that no longer runs (on another machine: as the user vouches); refused
        while its holder runs here. Returns whom it was taken from, None when nobody held it."""
        holder = self.lock_holder()
        if holder is None:
            return None
        if holder.running():
            raise RetrieverError(
                f"the writer lock of Milvus store {self.label} is held by a running build: {holder.describe()}; "
                "stop it first, or let it finish"
            )
        drop_lock(self, holder)
        return holder

    # -- reading -----------------------------------------------------------------------------------------------
    def call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """A pymilvus call, bounded by the request timeout, its failures as one line naming the store. A
        connection given up on is dropped, so the next call connects afresh (a server restarted meanwhile)."""
        kwargs.setdefault("timeout", self.location.timeout)
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # pymilvus raises its own types, and grpc's, for the same failures
            raise self.failed(exc, method.__name__) from exc

    def failed(self, exc: Exception, method: str) -> RetrieverError:
        code = getattr(exc, "code", None)
        if code in (MISSING, MISSING_ALIAS) and method == "describe_alias":
            return MissingAlias(str(getattr(exc, "message", exc)))
        if code == MISSING:
            return StaleRead(f"Milvus store {self.label}: {getattr(exc, 'message', exc)}; {self.rebuild_hint}")
        if code == NOT_LOADED:  # asked again, the index is loaded afresh, and `load` waits for its collections
            return StaleRead(f"Milvus store {self.label}: {getattr(exc, 'message', exc)}; ask again to load it")
        error = failure(self.location, exc)
        if isinstance(error, StoreUnreachable):  # the next call connects afresh
            self.drop_client()
        return error

    def drop_client(self) -> None:
        """Close a client given up on, not just forget it: its gRPC channel, left open, goes on reconnecting to
        the server's address in gRPC's backoff, which a new client to that address may share."""
        client, self._client = self._client, None
        if client is not None:
            with suppress(Exception):  # already broken: closing it is all that is wanted
                client.close()

    def header(self, gen: str) -> dict[str, str]:
        """The generation's header row (format, versions, the manifest's checksum); when it is missing, one line
        saying exactly what is and what to do."""
        described = self.call(self.client.describe_collection, gen)
        fields = {str(f.get("name")) for f in described.get("fields") or []}
        if not {"kind", "seq", "blob"} <= fields:
            raise RetrieverError(
                f"Milvus store {self.label} holds no retriever index under its alias; {self.rebuild_hint}"
            )
        try:
            return {str(k): str(v) for k, v in json.loads(self.blob(gen, "header")).items()}
        except MissingMetadata:
            pass
        old = {str(k): str(v) for k, v in (described.get("properties") or {}).items()}
        if old.get("retriever.format") == FORMAT:  # before LAYOUT 4, in properties a 2.3 server forgets on restart
            found = f"{old.get('retriever.version')}/{old.get('retriever.layout')}"
            raise MissingMetadata(
                f"Milvus store {self.label} has index format {found}, this retriever reads {VERSION}/{LAYOUT}; "
                f"republish it with `{self.index_command()}` where it was built (nothing is embedded again)",
                fix=self.index_command(),
            )
        raise MissingMetadata(
            f"Milvus store {self.label}: the live generation {gen} lacks its header row (format, versions and "
            "manifest checksum; a retriever before layout 4 kept them in collection properties, which a Milvus 2.3 "
            f"server forgets on restart); repair it with `{self.index_command()}` where it was built "
            "(nothing is embedded again)",
            fix=self.index_command(),
        )

    def manifest_of(self, gen: str) -> Manifest:
        if gen in self._manifests:
            return self._manifests[gen]
        header = self.header(gen)
        if header.get("format") != FORMAT:
            raise RetrieverError(
                f"Milvus store {self.label} holds no retriever index under its alias; {self.rebuild_hint}"
            )
        found = f"{header.get('version')}/{header.get('layout')}"
        if found != f"{VERSION}/{LAYOUT}":
            raise RetrieverError(
                f"Milvus store {self.label} has index format {found}, this retriever reads {VERSION}/{LAYOUT}; "
                f"{self.rebuild_hint}"
            )
        raw = self.blob(gen, "manifest")
        if hashlib.sha256(raw).hexdigest() != header.get("sha256"):
            raise StaleRead(
                f"the manifest in Milvus store {self.label} does not match its checksum; {self.rebuild_hint}"
            )
        manifest = self.parsed(raw)
        self._manifests = {gen: manifest}
        return manifest

    def parsed(self, raw: bytes) -> Manifest:
        try:
            manifest = Manifest.from_json(json.loads(raw))
            manifest.check()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RetrieverError(
                f"the manifest in Milvus store {self.label} is inconsistent ({exc}); {self.rebuild_hint}"
            ) from exc
        if manifest.store != "milvus":
            raise RetrieverError(
                f"Milvus store {self.label} holds a manifest of a {manifest.store} index; {self.rebuild_hint}"
            )
        return manifest

    def blob(self, gen: str, kind: str) -> bytes:
        """A document stored in the manifest collection: zlib, base64, cut into VARCHAR rows. Read at Strong
        consistency: a few rows, once per generation, and never a half-visible generation."""
        self.call(self.client.load_collection, gen)
        rows = self.call(
            self.client.query,
            gen,
            filter=f'kind == "{kind}"',
            output_fields=["seq", "blob"],
            limit=MAX_LIMIT,
            consistency_level="Strong",
        )
        if not rows:
            raise MissingMetadata(f"Milvus store {self.label}: {gen} has no {kind} rows; {self.rebuild_hint}")
        text = "".join(r["blob"] for r in sorted(rows, key=lambda r: r["seq"]))
        try:
            return zlib.decompress(base64.b64decode(text))
        except (ValueError, zlib.error) as exc:
            raise StaleRead(f"the {kind} in Milvus store {self.label} is corrupt; {self.rebuild_hint}") from exc

    def repair(self, gen: str, staged: StoredIndex) -> None:
        """Write the header of a live generation that lost it, once its data is checked whole and made from this
        staged build: its manifest's checksum is taken afresh, and nothing is embedded or uploaded again."""
        raw = self.blob(gen, "manifest")
        manifest = self.parsed(raw)
        self.blob(gen, "vocab")
        missing = [
            f"{name} ({rows} rows)"
            for name, rows in self.expected_rows(gen.removesuffix("__meta"), manifest).items()
            if not self.call(self.client.has_collection, name)
            or int(self.call(self.client.get_collection_stats, name).get("row_count", -1)) < rows
        ]
        if manifest.fingerprint != staged.manifest.fingerprint or len(manifest.chunks) != len(staged.manifest.chunks):
            missing.append(f"a manifest matching the staged build {staged.path.name}")
        if missing:
            raise RetrieverError(
                f"Milvus store {self.label}: the live generation {gen} lacks its header and cannot be repaired, it "
                f"lacks {', '.join(missing)}; {self.rebuild_hint}"
            )
        write_header(self, gen, header_of(raw, manifest, staged.path.name))
        self.call(self.client.flush, gen)
        self._manifests = {}
        self.notices.append(
            f"repaired Milvus store {self.label}: its live generation had lost its header row; rewrote it from the "
            "published manifest (nothing embedded or uploaded again)"
        )

    @staticmethod
    def expected_rows(prefix: str, manifest: Manifest) -> dict[str, int]:
        """The generation's collections and the fewest rows each holds when whole."""
        expected = {f"{prefix}__{m.replace('.', '_')}": rows for m, (rows, _) in manifest.matrices().items()}
        if SPANS in manifest.extras:
            expected[f"{prefix}__tokens"] = 1 if manifest.chunks else 0
        if manifest.ann.get("bm25", {}).get("kind") != "none":
            expected[f"{prefix}__bm25"] = 0  # chunks of no weighted term have no row: only its presence is checked
        return expected

    # -- publishing --------------------------------------------------------------------------------------------
    def publish(self) -> bool:
        """Make the staged build live in Milvus, unless it already is; True when a new generation was written.
        Called with the writer lock held (see `lock`), so `live` cannot move under it."""
        if self._writer is None or self._writer.mine is None:
            raise RuntimeError("publish needs the writer lock")  # a programming error, never the user's
        staged = self.local.verified()
        gen = f"{self.location.name}__{generation_id(staged.path.name)}_l{LAYOUT}"  # a new layout: republished
        live = self.generation()
        if live == f"{gen}__meta":
            try:
                self.manifest_of(live)
            except MissingMetadata:  # what a server forgot on restart, or lost otherwise: the data may be whole
                self.repair(live, staged)
                return True
            return False
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

    def drop_generations(self, keep: set[str], only: str | None = None) -> None:
        """Every generation (or only the one named) but those kept: older ones, and the remains of a publish that
        died half-way."""
        prefix = f"{only}__" if only else f"{self.location.name}__g"
        for name in self.call(self.client.list_collections):
            if name.startswith(prefix) and name.rsplit("__", 1)[0] not in keep:
                self.call(self.client.drop_collection, name)


class MissingAlias(RetrieverError):
    """Nothing was published under the store's name yet."""


class MissingMetadata(RetrieverError):
    """A generation's collections are there, but a document of its meta collection is not; fix: the command that
    repairs it, where that is less than a full build (doctor proposes it)."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix


def generation_id(staged: str) -> str:
    """Collection-name form of a staged generation `gen-20261203T062500-abcd1234`."""
    return "g" + re.sub(r"\W", "_", staged.removeprefix("gen-"), flags=re.ASCII)
