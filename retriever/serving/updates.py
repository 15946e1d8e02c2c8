"""Updates sent to a running server: `retriever index`, and the watcher of another process (`mcp --watch` beside a
`serve`), hand the incremental build to the server that already holds the models instead of loading them again.
Measured by bench/update.py on the Hecto FAQ (440 chunks), one edited note (2 texts to embed), taking turns on a
shared 2-core machine (load ~5): a new `index` process 8.32 s wall and 4.28 CPU-s, most of it loading the models,
Kiwi and the tokenizer; through a warm `serve` 0.89 s and 0.39 CPU-s (0.11× and 0.09×), 7.9× the bare embedding of
the texts it embedded (0.112 s). Of that, the client's own process (start, imports, requests) 0.41 s, and the build
and load of the new generation 0.65 s, by phase (× the bare embedding): embedding 1.1×, the commit less its check
1.4×, the check (load, one question) 0.8×, loading the new generation 0.6×, chunking 0.5×, BM25 0.4×, writing
vectors 0.3×. Against the code before this, the two taking turns process by process: the build and load 0.63 →
0.43 s (medians of 12), the client against the same server 1.26 → 0.95 s (medians of 4).

An update runs in a thread of the server through Retriever.index, under the same writer lock and commit check as
any build (a generation goes live only once it loads and answers), and the new generation is loaded before the
update counts as done, so the client that waited for it is answered from it at once. POST /index queues an update
and answers its number at once; GET /update?id=&wait= tells how it is once it has finished or `wait` seconds have
passed (at most MAX_WAIT), so the client learns of the end at once instead of at its next poll (polling every 0.3 s
cost 0.15 s an update on average, and up to 0.3 s), and shows the build's progress meanwhile. At most one update
waits behind the one running: a request that finds one waiting joins it, since it has not read the notes yet and
so covers the new request's edits too. The last KEEP results are kept for their clients to read.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import RetrieverError

KEEP = 32  # finished updates whose result a client may still ask for
MAX_WAIT = 5  # whole seconds GET /update may hold its answer for the update to finish (the client asks for all)


@dataclass
class Update:
    number: int
    full: bool
    state: str = "queued"  # queued, building, done, failed
    report: dict[str, Any] | None = None  # what `index --json` prints
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event, repr=False)  # set once done or failed

    def to_json(self) -> dict[str, Any]:
        told = {"id": self.number, "state": self.state, "report": self.report, "error": self.error}
        return {key: value for key, value in told.items() if value is not None}


class Updates:
    """The server's queue of updates: one builds at a time, one at most waits."""

    def __init__(self, build: Callable[[bool], dict[str, Any]]) -> None:
        self.build = build  # full → the report, run in the update's thread
        self.lock = threading.Lock()  # guards the fields below
        self.building = threading.Lock()  # held by the update that builds
        self.numbers = itertools.count(1)
        self.known: OrderedDict[int, Update] = OrderedDict()
        self.waiting: Update | None = None
        self.active = 0  # queued or building

    @property
    def busy(self) -> bool:
        """Whether an update is queued or building: a server does not stop for idleness meanwhile."""
        return self.active > 0

    def start(self, full: bool) -> Update:
        with self.lock:
            waiting = self.waiting
            if waiting is not None:
                waiting.full |= full
                return waiting
            update = self.waiting = Update(next(self.numbers), full)
            self.known[update.number] = update
            self.active += 1
            finished = [n for n, u in self.known.items() if u.state in ("done", "failed")]
            for number in finished[: max(len(self.known) - KEEP, 0)]:
                del self.known[number]
        threading.Thread(target=self.run, args=(update,), name="update", daemon=True).start()
        return update

    def run(self, update: Update) -> None:
        with self.building:
            with self.lock:
                self.waiting = None
                update.state = "building"
                full = update.full
            try:
                update.report = self.build(full)
                update.state = "done"
            except Exception as exc:  # noqa: BLE001 - whatever it was, the waiting client gets it as one line
                why = str(exc) if isinstance(exc, RetrieverError) else f"unexpected {type(exc).__name__}: {exc}"
                update.error = " ".join(why.split())
                update.state = "failed"
            finally:
                with self.lock:
                    self.active -= 1
                update.finished.set()

    def wait(self, update: Update) -> dict[str, Any]:
        """The report of this update once built; its failure as the RetrieverError it was."""
        update.finished.wait()
        if update.error is not None:
            raise RetrieverError(update.error)
        assert update.report is not None
        return update.report

    def state(self, number: int, wait: float = 0.0) -> dict[str, Any]:
        """How update `number` is, once it has finished or `wait` seconds (at most MAX_WAIT) have passed."""
        with self.lock:
            update = self.known.get(number)
        if update is None:
            raise RetrieverError(f"no update {number} here (the last {KEEP} are kept)")
        update.finished.wait(min(max(wait, 0.0), MAX_WAIT))
        with self.lock:
            return update.to_json()
