"""The index in Milvus: everything a question reads lives in one set of collections per generation, so any number
of `retriever serve` processes on other machines can answer from it with no local files.

A build is staged locally first (the same incremental, content-addressed build as the default store, in the
`--index` folder), then published (`milvus_publish`), and finally the alias `NAME` is moved to the new generation's
manifest collection. Readers resolve the alias once per question (`milvus_index` reads a generation), so they see
the old or the new index whole, as with local files' CURRENT pointer. One writer at a time (`milvus_lock`); where
the store is and how to reach it is `milvus_connection`'s.
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

from .errors import RetrieverError, StaleRead
from .failpoints import failpoint
from .generation import StoredIndex
from .manifest import FORMAT, VERSION, Manifest
from .milvus_connection import Location, StoreUnreachable, connect, failure
from .milvus_index import MilvusIndex
from .milvus_layout import LAYOUT, MAX_LIMIT
from .milvus_lock import Holder, WriterLock, drop_lock, lock_holder
from .milvus_publish import Publisher
from .store import IndexStore

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

    def properties(self, collection: str) -> dict[str, str]:
        described = self.call(self.client.describe_collection, collection)
        return {str(k): str(v) for k, v in (described.get("properties") or {}).items()}

    def manifest_of(self, gen: str) -> Manifest:
        if gen in self._manifests:
            return self._manifests[gen]
        props = self.properties(gen)
        if props.get("retriever.format") != FORMAT:
            raise RetrieverError(
                f"Milvus store {self.label} holds no retriever index under its alias; {self.rebuild_hint}"
            )
        found = f"{props.get('retriever.version')}/{props.get('retriever.layout')}"
        if found != f"{VERSION}/{LAYOUT}":
            raise RetrieverError(
                f"Milvus store {self.label} has index format {found}, this retriever reads {VERSION}/{LAYOUT}; "
                f"{self.rebuild_hint}"
            )
        raw = self.blob(gen, "manifest")
        if hashlib.sha256(raw).hexdigest() != props.get("retriever.sha256"):
            raise StaleRead(
                f"the manifest in Milvus store {self.label} does not match its checksum; {self.rebuild_hint}"
            )
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
        self._manifests = {gen: manifest}
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
        text = "".join(r["blob"] for r in sorted(rows, key=lambda r: r["seq"]))
        try:
            return zlib.decompress(base64.b64decode(text))
        except (ValueError, zlib.error) as exc:
            raise StaleRead(f"the {kind} in Milvus store {self.label} is corrupt; {self.rebuild_hint}") from exc

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


def generation_id(staged: str) -> str:
    """Collection-name form of a staged generation `gen-20261203T062500-abcd1234`."""
    return "g" + re.sub(r"\W", "_", staged.removeprefix("gen-"), flags=re.ASCII)
