"""A build's embedding sharded over a Ray cluster (`retriever index --ray ADDRESS`), for corpora one machine would
take a day on.

The writer reads and chunks the notes as a local build does, then hands the passes to a pool of Ray actors, each
loading the encoders once. Steps of `checkpoint.STEP` texts go out in order and their results come back in order,
at most a few steps per actor in flight, so no process ever holds more than those steps' vectors: the writer
appends each step to its scratch files and checkpoint as a local build does, and everything after the passes (the
matrices, BM25, the commit, and for Milvus the publish under the writer lock with its alias swap) is the local
build's own code. So the index equals a local build's, and is published whole or not at all. An actor that dies
mid-build is restarted by Ray and its step run again (`max_restarts`, `max_task_retries`): it costs that step only.

Token vectors are most of what a pass returns (384 bytes a token in int8), and a local build keeps all of them
until it trains its codebook on them at the end. Here the codebook comes first: the index's own where an
incremental build keeps one (as a local build does), one an interrupted build of this index trained (kept in the
checkpoint), or else one trained by the writer on the tokens of a sample of steps (`tokencodes.MAX_TRAIN` tokens,
steps picked at random over the whole build, so long and short chunks alike). It is put once in Ray's object store
and every later step's actor returns its tokens as codes of it (48 bytes a token): no process holds every token
vector, and the writer writes codes as they come. A build whose sample is all its steps trains on exactly the
tokens a local build trains on, in the same order, so its codebook is the local build's.

Plain actors rather than Ray Data's `map_batches`: the steps must come back in corpus order for the build to
write what a local build writes, and the writer must keep each step's checkpoint; an ordered `ActorPool` gives
both without a dataset layer. Ray is imported only when a cluster is joined, and only when `--ray` is given.
"""

from __future__ import annotations

import hashlib
import logging
import socket
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders import Encoder, ModelSpec, Spans, span_encoder
from ..errors import RetrieverError
from ..index.generation import StoredIndex
from ..index.tokencodes import MAX_TRAIN, Codebook, token_floats
from .checkpoint import Checkpoint, Embedded, Progress, Resumable, Step

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
        from ..encoders import load_encoder
        from ..encoders.threads import cap_threads

        cap_threads()
        self.encoders = [span_encoder(load_encoder(name, Path(cache_dir))) for name in names]

    def embed(
        self, model: int, items: Sequence[Spans], parts: Sequence[int], tokens: bool, codes: np.ndarray | None
    ) -> list[Embedded]:
        """codes: the build's codebook's centroids (from Ray's object store), or None for int8 tokens."""
        pooled = self.encoders[model].encode_spans(items, None, tokens)
        results = [Embedded.of(p, n, tokens) for p, n in zip(pooled, parts)]
        return results if codes is None else [coded(r, Codebook(codes)) for r in results]


def coded(result: Embedded, codebook: Codebook) -> Embedded:
    """A pass's int8 tokens as codes, encoded from the very int8 rows a local build encodes."""
    return replace(result, tokens=[codebook.encode(token_floats(t, None)) for t in result.tokens])


@dataclass
class Cluster:
    """The actor pool of one build."""

    pool: Any
    actors: int
    codebook: Codebook | None = None  # the index's own, which an incremental build keeps
    resume: bool = True  # whether the build takes an interrupted build's work (not --full)

    def passes_of(self, model: int, encoder: Encoder, tokens: bool, checkpoint: Checkpoint) -> Resumable:
        sharded = Sharded(span_encoder(encoder), tokens, checkpoint, cluster=self, model=model)
        if tokens:
            kept = self.codebook or (checkpoint.codebook(encoder.spec) if self.resume else None)
            if kept is not None:
                sharded.settle(kept)
            else:
                sharded.settled = False
        return sharded


@dataclass
class Sharded(Resumable):
    """A model's passes run by the cluster's actors; the checkpoint and progress stay with the writer."""

    cluster: Cluster | None = None
    model: int = 0
    settled: bool = True  # whether the tokens' form is known: codes of `codes`, or int8 when it is None
    digest: str = ""  # of `codes`
    pending: deque[tuple[Sequence[Spans], list[int]]] = field(default_factory=deque)

    def settle(self, codes: Codebook | None) -> None:
        self.codes, self.settled = codes, True
        self.digest = hashlib.sha256(codes.stored().tobytes()).hexdigest()[:16] if codes is not None else ""

    def key(self, item: Spans) -> str:
        """A text's token results are codes of one codebook: its digest is in their key. Before the codebook is
        trained nothing matches (no record holds codes of a codebook not yet trained)."""
        plain = super().key(item)
        if not self.tokens or (self.settled and self.codes is None):
            return plain
        return f"{plain}:{self.digest if self.settled else 'untrained'}"

    def embed_all(self, steps: Iterable[Step], progress: Progress) -> Iterator[list[Embedded]]:
        assert self.cluster is not None
        steps = list(steps)  # the items are the build's own; only their windows are new
        sampled = {} if self.settled else self.sample(steps, progress)
        codes = self.put_codes()
        ahead = AHEAD * self.cluster.actors
        rest = (step for i, step in enumerate(steps) if i not in sampled)
        for i in range(len(steps)):
            if i in sampled:
                yield sampled.pop(i)
                continue
            while len(self.pending) < ahead and (step := next(rest, None)) is not None:
                self.pending.append((step[0], self.submit(step, self.todo(step[0]), codes)))
            items, todo = self.pending.popleft()
            fresh: list[Embedded] = fetch(self.cluster.pool) if todo else []
            if todo:
                progress([items[i] for i in todo])(len(todo))
            yield self.merge(items, todo, fresh)

    def sample(self, steps: list[Step], progress: Progress) -> dict[int, list[Embedded]]:
        """Steps picked at random, embedded with int8 tokens until they hold MAX_TRAIN tokens; the codebook trained
        on those (in build order), then their results as codes of it, by step. Their tokens are all the writer
        ever holds of the build's."""
        assert self.cluster is not None
        order = iter(np.random.default_rng(0).permutation(len(steps)).tolist())
        flight: deque[int] = deque()
        results: dict[int, list[Embedded]] = {}
        seen = 0
        while True:
            while (
                len(flight) < AHEAD * self.cluster.actors and seen < MAX_TRAIN and (i := next(order, None)) is not None
            ):
                flight.append(i)
                self.submit(steps[i], list(range(len(steps[i][0]))), None)
            if not flight:
                break
            i = flight.popleft()
            results[i] = fetch(self.cluster.pool)
            progress(steps[i][0])(len(steps[i][0]))
            seen += sum(len(t) for r in results[i] for t in r.tokens)
        tokens = [t for i in sorted(results) for r in results[i] for t in r.tokens]
        trained = Codebook.train(token_floats(np.concatenate(tokens), None)) if tokens else None
        self.settle(trained)
        if trained is not None:
            self.checkpoint.keep_codebook(self.encoder.spec, trained)  # before any record holds codes of it
            results = {i: [coded(r, trained) for r in rs] for i, rs in results.items()}
        return {i: self.merge(steps[i][0], range(len(rs)), rs) for i, rs in results.items()}

    def submit(self, step: Step, todo: list[int], codes: Any) -> list[int]:
        """The step's texts in todo sent to the next free actor; codes: the codebook's object, or None."""
        assert self.cluster is not None
        if todo:
            items, parts = step
            args = (self.model, [items[i] for i in todo], [parts[i] for i in todo], self.tokens, codes)
            self.cluster.pool.submit(lambda actor, a: actor.embed.remote(*a), args)
        return todo

    def put_codes(self) -> Any:
        """The codebook's centroids in Ray's object store, sent with every step: an actor Ray restarts loses what
        it was told, never the arguments of the step it retries."""
        import ray

        return ray.put(self.codes.centroids) if self.codes is not None else None


def index_codebook(previous: StoredIndex | None, spec: ModelSpec) -> Codebook | None:
    """The codebook of the index an incremental build keeps (`StoredIndex.token_codebook`), or None."""
    name = previous.token_codebook(spec) if previous is not None else ""
    return Codebook.load(previous.path / f"{name}.npy") if previous is not None and name else None


@contextmanager
def cluster(
    settings: RaySettings,
    names: Sequence[str],
    cache_dir: Path,
    codebook: Codebook | None = None,
    resume: bool = True,
) -> Iterator[Cluster]:
    """The actors of one build on the cluster at settings.address, gone when the build is; codebook and resume as
    in `Cluster`."""
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
        yield Cluster(ActorPool(actors), count, codebook, resume)
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
