"""The native pools' threads: capped at the CPUs the process may use, sleeping rather than spinning when idle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retriever.encoders import threads

REPORT = """
import json, os
from threadpoolctl import threadpool_info
from retriever import Retriever
Retriever("notes", "index")
import faiss  # after the Retriever: libgomp reads its settings once, when it loads
openmp = {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "openmp"}
print(json.dumps([faiss.omp_get_max_threads(), sorted(openmp), os.environ.get("OMP_WAIT_POLICY")]))
"""


def pools(env: dict[str, str]) -> list[object]:
    """faiss's OpenMP threads, every loaded OpenMP pool's, and the wait policy, in a fresh process."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    done = subprocess.run([sys.executable, "-c", REPORT], env=clean | env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_native_pools_get_the_cpus_the_process_may_use_and_sleep_when_idle() -> None:
    cpus = threads.available_cpus()
    assert 1 <= cpus <= len(os.sched_getaffinity(0))
    assert pools({}) == [cpus, [cpus], "passive"]


def test_a_lower_thread_count_or_wait_policy_the_user_set_is_kept() -> None:
    assert pools({"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "active"}) == [1, [1], "active"]


@pytest.mark.parametrize(
    ("v2", "v1", "cpus"),
    [
        ("200000 100000\n", None, 2),
        ("50000 100000\n", None, 1),
        ("max 100000\n", None, None),
        (None, ("300000", "100000"), 3),
        (None, ("-1", "100000"), None),
        (None, None, None),
    ],
)
def test_a_cgroup_quota_counts_in_whole_cpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, v2: str | None, v1: tuple[str, str] | None, cpus: int | None
) -> None:
    monkeypatch.setattr(threads, "CGROUP_V2", tmp_path / "cpu.max")
    monkeypatch.setattr(threads, "CGROUP_V1", (tmp_path / "cpu.cfs_quota_us", tmp_path / "cpu.cfs_period_us"))
    if v2 is not None:
        threads.CGROUP_V2.write_text(v2)
    if v1 is not None:
        for path, value in zip(threads.CGROUP_V1, v1):
            path.write_text(value + "\n")
    assert threads.cgroup_cpus() == cpus
