"""How many threads the native libraries run, decided once when a Retriever starts: no more than the CPUs this
process may use, and waiting threads that sleep instead of spinning.

faiss and torch run OpenMP (libgomp), whose idle workers spin at every barrier before they sleep. On a busy machine
a spinning worker takes a core from the one doing the work: training the token codebook on 2 threads took 6.8 CPU-s
and 39-63 s of wall time under a load of 22 on 2 cores, against 0.8 CPU-s and 0.9-3.9 s with OMP_WAIT_POLICY=passive
(same run, alternating). libgomp reads its settings when it loads, so they go into the environment before faiss or
torch is imported; a variable the user set is kept. Pools already loaded get the thread cap through threadpoolctl.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def cgroup_cpus() -> int | None:
    """The container's CPU quota in whole CPUs (at least one), or None when it has none: a container limited to
    2 CPUs on a 64-core host still sees 64 in os.cpu_count() and its affinity mask."""
    try:
        if CGROUP_V2.exists():
            quota, period = CGROUP_V2.read_text().split()[:2]
        else:
            quota, period = (path.read_text().strip() for path in CGROUP_V1)
    except (OSError, ValueError):
        return None
    if quota in ("max", "-1") or int(period) <= 0:
        return None
    return max(1, int(quota) // int(period))


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, within its cgroup's quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpus, cgroup_cpus() or cpus))


@cache
def cap_threads() -> int:
    """The thread count for the native pools (faiss, torch, the ONNX encoder's workers), applied once.

    BLAS gets one thread: numpy's products at query time are tiny, and a second BLAS pool left spinning beside the
    encoder's threads on 2 cores stalls the next forward (measured: e5+use with re-ranking 43 ms → 22 ms a query)."""
    from threadpoolctl import threadpool_limits

    threads = available_cpus()
    asked = os.environ.get("OMP_NUM_THREADS", "")
    if asked.isdigit() and int(asked) > 0:
        threads = min(threads, int(asked))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    threadpool_limits(1, user_api="blas")
    threadpool_limits(threads, user_api="openmp")
    return threads
