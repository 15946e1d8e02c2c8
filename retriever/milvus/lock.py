"""One writer at a time per Milvus store, across machines: the collection `NAME__lock` is the mutex, and records
who holds it.

Creating a collection is the only atomic test-and-set Milvus offers, but servers make it idempotent: 2.3 accepts a
second create with the same parameters and refuses one with different ones (in words that differ by version),
while Milvus Lite refuses any second create. So each take creates the collection with a description unique to the
taker, and whether it was taken is judged by what the server then holds, never by an error's wording: the lock is
ours when the recorded holder is us. Errors are told apart by code (the server away, credentials refused).

A build holds it from before it reads the live generation to after the alias moved, and the local build lock
with it, so a second writer anywhere waits, as a second local build waits for the file lock.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import RetrieverError, StaleRead
from .connection import Connected, CredentialsRefused, StoreUnreachable, failure

HOLDER = "retriever.holder"  # the lock collection's property (Milvus Lite keeps no description)
POLL = 1.0


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    since: float  # epoch seconds, whole: as recorded
    nonce: str  # tells two takes by the same process apart

    @classmethod
    def me(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), float(int(time.time())), secrets.token_hex(4))

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        parts = text.rsplit(":", 3)
        if len(parts) != 4:
            return None
        host, pid, since, nonce = parts
        try:
            return cls(host, int(pid), float(since), nonce)
        except ValueError:
            return None

    @property
    def text(self) -> str:
        return f"{self.host}:{self.pid}:{self.since:.0f}:{self.nonce}"

    def running(self) -> bool | None:
        """Whether the holding process still runs: None when it is on another machine, which cannot be checked."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, as another user
            return True
        return True

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        state = {True: "running", False: "no longer running", None: "on another machine"}[self.running()]
        return f"pid {self.pid} on {self.host} ({state}), since {since}"


UNKNOWN = Holder("?", 0, 0.0, "")  # a lock being taken right now (created, holder not yet recorded)


class WriterLock:
    """The store's writer lock, with the local build lock it is taken after; shaped as a filelock (acquire with a
    timeout, release, lock_file) so a build waits on both as it waits on the local one."""

    def __init__(self, store: Connected, local: Any) -> None:
        self.store, self.local = store, local
        self.mine: Holder | None = None

    @property
    def lock_file(self) -> str:
        return str(self.local.lock_file)

    def acquire(self, timeout: float = -1) -> None:
        """timeout 0 tries once (a filelock Timeout if held), otherwise waits up to timeout seconds."""
        from filelock import Timeout

        started = time.monotonic()
        self.local.acquire(timeout=timeout)
        try:
            while (holder := self.try_take()) is not None:
                waited = time.monotonic() - started
                if timeout == 0:
                    raise Timeout(self.lock_file)
                if 0 < timeout <= waited:
                    raise RetrieverError(
                        f"another build is writing to Milvus store {self.store.label} after {waited:.0f} s: "
                        f"{holder.describe()}; if it no longer runs, release its lock with "
                        f"`{self.store.release_command}`"
                    )
                time.sleep(POLL)
        except BaseException:
            self.local.release()
            raise

    def try_take(self) -> Holder | None:
        """None once the lock is ours; else who holds it. A holder on this machine that no longer runs (killed, or
        the machine restarted) is taken over."""
        store = self.store
        me = Holder.me()
        try:
            store.client.create_collection(store.lock_name, schema=lock_schema(me))
        except Exception as exc:  # refused: taken, unless the collection is not there after all
            error = failure(store.location, exc)
            if isinstance(error, (StoreUnreachable, CredentialsRefused)) or not store.call(
                store.client.has_collection, store.lock_name
            ):
                raise error from exc
        else:
            store.call(store.client.alter_collection_properties, store.lock_name, properties={HOLDER: me.text})
        holder = lock_holder(store)
        if holder == me:
            self.mine = me
            return None
        if holder is not None and holder is not UNKNOWN and holder.running() is False:
            drop_lock(store, holder)
            return self.try_take()
        return holder or UNKNOWN

    def release(self) -> None:
        try:
            if self.mine is not None:
                drop_lock(self.store, self.mine)
                self.mine = None
        finally:
            self.local.release()


def lock_holder(store: Connected) -> Holder | None:
    """Who holds the lock now: None when nobody does, UNKNOWN while it is being taken."""
    try:
        if not store.call(store.client.has_collection, store.lock_name):
            return None
        described = store.call(store.client.describe_collection, store.lock_name)
    except StaleRead:  # released between the two calls
        return None
    recorded = (described.get("properties") or {}).get(HOLDER) or described.get("description") or ""
    return Holder.parse(str(recorded)) or UNKNOWN


def drop_lock(store: Connected, holder: Holder) -> bool:
    """Drop the lock if that holder still has it (a second look right before: another waiter may have taken it
    over since)."""
    if lock_holder(store) != holder:
        return False
    store.call(store.client.drop_collection, store.lock_name)
    return True


def lock_schema(holder: Holder) -> Any:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=holder.text)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    return schema
