"""One loaded Retriever behind the long-running servers (HTTP and MCP): questions are answered one at a time,
rebuilds run beside them and swap in whole.

A question takes ~25 ms and both cores, so serialising them costs nothing in throughput and keeps the models'
and Kiwi's state out of reach of concurrent calls. A question that waits for another does so for QUESTION_WAIT
seconds at most, then gets one line (busy): however long one question takes, the others are answered or refused
within that bound rather than queued behind it. A rebuild (from --watch, or an update: updates.py) writes a new
generation and loads it before the next question sees it, so no question ever meets a half-written index.

Builds never hold the query lock. A question that finds the notes changed has the update built by the update
queue, and waits for it without the lock; a question asked while an update is queued or building is answered at
once from the live generation, the one before the update, until the update commits. (A build run by a question,
under the lock, kept every other question waiting, and after QUESTION_WAIT answered "busy".)

A shared store's server can go away (a restart, a network cut): the first question that finds it gone puts the
service into an outage, questions meanwhile get one line at once instead of each waiting out the timeout, and a
thread asks the warm-up question again with backoff until it is answered, with no restart of `serve`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..api import Retriever, canonical_model
from ..encoders import DEFAULT_MODELS, short_name
from ..errors import Busy, RetrieverError
from ..failpoints import holdpoint
from ..milvus.connection import StoreUnreachable
from ..search.question import METHODS
from ..search.ranking import Mode
from .client import send_update
from .updates import Updates

FIRST_RETRY, LAST_RETRY = 1.0, 30.0  # seconds between tries of an unreachable store: doubling, up to the last
QUESTION_WAIT = float(os.environ.get("RETRIEVER_QUESTION_WAIT", "30"))  # seconds a question waits for the one before
T = TypeVar("T")


@dataclass
class Outage:
    """The store's server is away: since when, why, and when it is tried next."""

    error: str
    backoff: float = FIRST_RETRY
    retry_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "state": "unreachable",
            "retry_in": round(max(self.retry_at - time.monotonic(), 0.0), 1),
            "error": self.error,
        }


class Service:
    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever
        self.auto_update = retriever.auto_update  # the service's to keep, once warm: see fresh()
        self.queries = threading.Lock()
        self.watching = False
        self.updates = Updates(self.build)
        self.outage: Outage | None = None
        self._outages = threading.Lock()  # guards outage and the retry thread's start

    def warm(self) -> None:
        """Load the index and every model now, so the first question is as fast as the rest (and the index is
        rebuilt here if a model changed under its name). From then on the service, not each read, brings the index
        up to date with the notes (fresh)."""
        self.answering(lambda: self.retriever.ask("warm up", 1))
        self.retriever.auto_update = False

    def fresh(self) -> None:
        """Bring the index up to date with the notes before a question, through the update queue and outside the
        query lock, unless an update is queued or building already: the question is then answered from the live
        generation, and questions after the update's commit from the new one."""
        if not self.auto_update or self.updates.busy:
            return
        reason = self.retriever.staleness()
        if reason is None:
            return
        if self.retriever.reporter:
            self.retriever.reporter.note(f"{reason}: indexing {self.retriever.notes} into {self.retriever.store.root}")
        self.updates.wait(self.updates.start(False))

    def search(
        self,
        method: str,
        question: str,
        k: int = 5,
        explain: bool = False,
        mode: Mode | None = None,
        filters: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The same JSON as `retriever ask --json`; filters by name, as retriever.search.filters reads them."""
        if method not in METHODS:
            raise ValueError(method)

        def read() -> list[Any]:
            holdpoint("question")  # a test's question held here holds the index, as a slow one would
            return getattr(self.retriever, method)(question, k, explain, mode, **(filters or {}))

        self.fresh()
        hits = self.answering(read)
        return {"query": question, "results": [hit.to_json() for hit in hits]}

    def get(self, ref: str) -> dict[str, Any]:
        return self.answering(lambda: self.retriever.get(ref))

    def answering(self, read: Callable[[], T]) -> T:
        """A read under the query lock, refused at once during an outage; one that finds the store away starts
        one."""
        outage = self.outage
        if outage is not None:
            raise RetrieverError(f"{outage.error} (retrying in {outage.to_json()['retry_in']:g} s)")
        if not self.queries.acquire(timeout=QUESTION_WAIT):
            raise Busy(f"busy: a question before this one has run for over {QUESTION_WAIT:g} s; ask again")
        try:
            return read()
        except StoreUnreachable as exc:
            self.lost(str(exc))
            raise
        finally:
            self.queries.release()

    def lost(self, error: str) -> None:
        with self._outages:
            if self.outage is not None:
                return
            self.outage = Outage(error, retry_at=time.monotonic() + FIRST_RETRY)
        threading.Thread(target=self.reconnect, name="store-retry", daemon=True).start()

    def reconnect(self) -> None:
        """Ask the warm-up question again and again, backing off, until the store answers; then end the outage."""
        while (outage := self.outage) is not None:
            time.sleep(max(outage.retry_at - time.monotonic(), 0.0))
            try:
                with self.queries:
                    self.retriever.ask("warm up", 1)
            except RetrieverError as exc:  # away still, or back but not serving yet (collections loading)
                with self._outages:
                    outage.error = str(exc)
                    outage.backoff = min(outage.backoff * 2, LAST_RETRY)
                    outage.retry_at = time.monotonic() + outage.backoff
                continue
            with self._outages:
                self.outage = None

    def refresh(self) -> dict[str, Any]:
        """Bring the index up to date with the notes, then load it, all outside the query lock: through another
        process's server of this index when one runs (it holds the indexing models; this process then needs none),
        else here. Called when notes changed, so it builds without first checking the folder (twice, before and
        after taking the lock: 0.7 s at 10 000 notes); a build over unchanged notes writes nothing. The report is
        what `index --json` prints."""
        report = self.elsewhere() or self.retriever.index().to_json()
        self.retriever.loaded()
        return report

    def elsewhere(self) -> dict[str, Any] | None:
        """The report of an update built by another process's server of this index, None when none runs (or it
        declines); a build it ran and failed is a RetrieverError, as the same build here would be."""
        retriever = self.retriever
        if retriever.store.shared:
            return None
        tell = retriever.reporter.note if retriever.reporter else None
        request = {"full": False, "encoders": retriever.requested_models}
        return send_update(retriever.store.root, retriever.notes, request, tell, exclude=os.getpid())

    def build(self, full: bool) -> dict[str, Any]:
        """An update a client sent (run by self.updates, one at a time): built and loaded here."""
        report = self.retriever.index(full=full).to_json()
        self.retriever.loaded()
        return report

    def update(self, full: bool, encoders: list[str] | None) -> dict[str, Any]:
        """POST /index: the number of the update queued for this request, or why this server does not build it
        (the client then builds in its own process)."""
        retriever = self.retriever
        if retriever.store.shared:
            return {"declined": f"its index is in {retriever.store.label}, which only `index --store` builds"}
        ours = retriever.index_models()
        theirs = [canonical_model(name) for name in encoders] if encoders else retriever.built_models()
        if (theirs or list(DEFAULT_MODELS)) != ours:  # what the client's own build would embed with
            return {"declined": f"it builds with the encoders {', '.join(short_name(name) for name in ours)}"}
        return {"update": self.updates.start(full).number}

    def status(self) -> dict[str, Any]:
        """What is served; during an outage, only what needs no store, with the outage under "store"."""
        served = {
            "status": "ok",
            "pid": os.getpid(),
            "notes_dir": str(self.retriever.notes),
            "collections": self.retriever.notes.names,
            "watching": self.watching,
        }
        try:
            info = self.answering(lambda: {"stale": self.retriever.staleness(), **self.retriever.info()})
        except RetrieverError:
            outage = self.outage
            if outage is None:
                raise
            return {**served, "index": self.retriever.store.label, "store": outage.to_json()}
        return {**served, **info, "store": {"kind": info["store"], "state": "ok"}}
