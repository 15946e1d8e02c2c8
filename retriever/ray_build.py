"""A build's embedding sharded over a Ray cluster (`retriever index --ray ADDRESS`), for corpora one machine would
take a day on.

The writer reads and chunks the notes as a local build does, then hands the passes to a pool of Ray actors, each
loading the encoders once. Steps of `checkpoint.STEP` texts go out in order and their results come back in order,
at most a few steps per actor in flight, so no process ever holds more than those steps' vectors: the writer
appends each step to its scratch files and checkpoint as a local build does, and everything after the passes (the
matrices, the token codebook trained on this build's tokens, BM25, the commit, and for Milvus the publish under
the writer lock with its alias swap) is the local build's own code. So the index equals a local build's, and is
published whole or not at all. An actor that dies mid-build is restarted by Ray and its step run again
(`max_restarts`, `max_task_retries`): it costs that step only.

Plain actors rather than Ray Data's `map_batches`: the steps must come back in corpus order for the build to
write what a local build writes, and the writer must keep each step's checkpoint; an ordered `ActorPool` gives
both without a dataset layer. Ray is imported only when a cluster is joined, and only when `--ray` is given.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import Checkpoint, Embedded, Progress, Resumable, Step
from .encoders import Encoder, Spans, span_encoder
from .errors import RetrieverError

LOCAL = "local"  # --ray local: a cluster of this machine alone, started for the build and stopped after it
AHEAD = 2  # steps in flight per actor: one running, one waiting, so an actor never idles on the writer
QUIET = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}  # the build's own
# progress is what the user reads
CONNECT_SECONDS = 10.0  # for the probe of a cluster's address: ray.init waits for a silent address past minutes
RESTARTS = 3  # times an actor that died is started again, and a step it was running is retried


@dataclass(frozen=True)
class RaySettings:
    address: str  # a cluster's address, `auto` (the one `ray start` runs on this machine) or `local`
    workers: int | None = None  # actors, one CPU each; None: one per CPU of the cluster
    cpus: int | None = None  # for `local`: CPUs the cluster may use; None: all of this machine's
    store_bytes: int | None = None  # for `local`: Ray's object store; None: Ray's default share of memory


class EmbedWorker:
    """One actor: the build's encoders, loaded once, running whole steps."""

    def __init__(self, names: Sequence[str], cache_dir: str) -> None:
        from .api import single_threaded_blas
        from .encoders import load_encoder

        single_threaded_blas()
        self.encoders = [span_encoder(load_encoder(name, Path(cache_dir))) for name in names]

    def embed(self, model: int, items: Sequence[Spans], parts: Sequence[int], tokens: bool) -> list[Embedded]:
        pooled = self.encoders[model].encode_spans(items, None, tokens)
        return [Embedded.of(p, n, tokens) for p, n in zip(pooled, parts)]


@dataclass
class Cluster:
    """The actor pool of one build."""

    pool: Any
    actors: int

    def passes_of(self, model: int, encoder: Encoder, tokens: bool, checkpoint: Checkpoint) -> Resumable:
        return Sharded(span_encoder(encoder), tokens, checkpoint, cluster=self, model=model)


@dataclass
class Sharded(Resumable):
    """A model's passes run by the cluster's actors; the checkpoint and progress stay with the writer."""

    cluster: Cluster | None = None
    model: int = 0
    pending: deque[tuple[Sequence[Spans], list[int]]] = field(default_factory=deque)

    def embed_all(self, steps: Iterable[Step], progress: Progress) -> Iterator[list[Embedded]]:
        assert self.cluster is not None
        pool, ahead = self.cluster.pool, AHEAD * self.cluster.actors
        steps = iter(steps)
        while True:
            while len(self.pending) < ahead and (step := next(steps, None)) is not None:
                items, parts = step
                todo = self.todo(items)
                if todo:
                    batch = [items[i] for i in todo]
                    args = (self.model, batch, [parts[i] for i in todo], self.tokens)
                    pool.submit(lambda actor, a: actor.embed.remote(*a), args)
                self.pending.append((items, todo))
            if not self.pending:
                return
            items, todo = self.pending.popleft()
            fresh: list[Embedded] = fetch(pool) if todo else []
            if todo:
                progress([items[i] for i in todo])(len(todo))
            yield self.merge(items, todo, fresh)


@contextmanager
def cluster(settings: RaySettings, names: Sequence[str], cache_dir: Path) -> Iterator[Cluster]:
    """The actors of one build on the cluster at settings.address, gone when the build is."""
    import ray
    from ray.util import ActorPool

    try:
        if settings.address == LOCAL:
            ray.init(num_cpus=settings.cpus, object_store_memory=settings.store_bytes, **QUIET)
        else:  # the address was probed before the build read its notes (`probe`)
            ray.init(address=settings.address, **QUIET)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RetrieverError(f"cannot join the Ray cluster at {settings.address!r}: {first_line(exc)}") from None
    try:
        count = settings.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        worker = ray.remote(num_cpus=1, max_restarts=RESTARTS, max_task_retries=RESTARTS)(EmbedWorker)
        actors = [worker.remote(list(names), str(cache_dir)) for _ in range(count)]
        yield Cluster(ActorPool(actors), count)
    finally:
        ray.shutdown()


def probe(address: str) -> None:
    """Refuses in seconds an address where no Ray head answers: Ray's own connect retries for minutes before it
    gives up on a GCS that is not there. A TCP connect to the head's port is what every client does first. Called
    before the build reads its notes or loads a model: a mistyped address must not cost the minutes those take."""
    where = address.removeprefix("ray://")
    host, sep, port = where.rpartition(":")
    if not sep or not port.isdigit():
        return  # `auto`, or a form Ray resolves itself: its own errors come quickly for those
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        reason = f"no answer within {CONNECT_SECONDS:g} s" if isinstance(exc, TimeoutError) else exc.strerror
        raise RetrieverError(
            f"cannot join the Ray cluster at {address!r}: {(reason or type(exc).__name__).lower()}; "
            "check that `ray start --head` runs there"
        ) from None


def fetch(pool: Any) -> list[Embedded]:
    """The next step's results; a step that failed on every retry ends the build, which then publishes nothing."""
    import ray

    try:
        return pool.get_next()  # type: ignore[no-any-return]
    except ray.exceptions.RayError as exc:
        raise RetrieverError(f"a Ray worker failed {RESTARTS + 1} times on one step: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
