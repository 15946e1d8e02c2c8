"""Where a command's time goes, for `--timings`: phases add up their wall time in this process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

STARTED = time.perf_counter()  # first import of the package: interpreter start-up itself is not counted
phases: dict[str, float] = {}


@contextmanager
def phase(name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - started


def mark(name: str, since: float = STARTED) -> None:
    phases[name] = time.perf_counter() - since
