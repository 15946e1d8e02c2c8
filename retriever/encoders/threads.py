"""Thread pools beside a model's own: what a process that encodes sets up once."""

from __future__ import annotations

from functools import cache


@cache
def single_threaded_blas() -> None:
    """numpy's products at query time are tiny; a second BLAS thread pool left spinning beside torch's OpenMP
    pool on 2 cores stalls the next model forward (measured: e5+use with re-ranking 43 ms → 22 ms a query)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
