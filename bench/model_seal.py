"""What checking the model cache against its seal costs each load: every cached file hashed with SHA-256, BLAKE2b
and xxh3-128 (page cache warm, as after the build or any earlier load), beside each model's load measured in the same
run, each in a fresh process as a cold question loads it (imports included), with the time its seal check took
inside that load. The ratios are the check's share of the load; the SHA-256 and BLAKE2b columns say what the same
check would cost with those hashes.

    .venv/bin/python bench/model_seal.py [--runs 5] [--cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import xxhash

from retriever.api import default_cache_dir
from retriever.encoders import DEFAULT_MODEL, USE_MODEL, load_encoder
from retriever.encoders.cache import SEAL, Hasher, digest

HASHES: dict[str, Callable[[], Hasher]] = {
    "sha256": hashlib.sha256,
    "blake2b": hashlib.blake2b,
    "xxh3_128": xxhash.xxh3_128,
}
LOADS = {  # what a process loads → the cached folders (by kind) its load checks
    "e5 questions (numpy)": ("load_query_encoder(DEFAULT_MODEL, cache)", ("e5",)),
    "e5 passages (ONNX)": ("load_encoder(DEFAULT_MODEL, cache)", ("e5", "onnx")),
    "use": ("load_encoder(USE_MODEL, cache)", ("use",)),
}
TIMED_LOAD = """
import json, sys, time
started = time.perf_counter()
from pathlib import Path
import retriever.encoders.cache as sealed
from retriever.encoders import DEFAULT_MODEL, USE_MODEL, load_encoder, load_query_encoder

checking = [0.0]
unchecked = sealed.damage

def damage(folder):
    start = time.perf_counter()
    try:
        return unchecked(folder)
    finally:
        checking[0] += time.perf_counter() - start

sealed.damage = damage
cache = Path(sys.argv[1])
{load}
print(json.dumps({{"load": time.perf_counter() - started, "check": checking[0]}}))
"""


def hash_time(path: Path, hasher: Callable[[], Hasher], runs: int) -> float:
    """Median seconds to hash the file as the cache check reads it."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        digest(path, hasher)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_time(cache: Path, load: str, runs: int) -> tuple[float, float]:
    """Median (load, seal check inside it) in seconds, each run a new process."""
    runs_seen = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", TIMED_LOAD.format(load=load), str(cache)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "RETRIEVER_QUERY_ENGINE": "numpy"},
        )
        if done.returncode:
            sys.exit(f"{load} failed:\n{done.stderr}")
        runs_seen.append(json.loads(done.stdout.splitlines()[-1]))
    return statistics.median(r["load"] for r in runs_seen), statistics.median(r["check"] for r in runs_seen)


def kind(folder: Path) -> str:
    return "use" if folder.name.startswith("use-") else "onnx" if "onnx" in folder.name else "e5"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    args = parser.parse_args()
    load_encoder(DEFAULT_MODEL, args.cache)  # builds whatever is not cached yet, so no load below builds
    load_encoder(USE_MODEL, args.cache)
    folders = [f for f in sorted((args.cache / "models").iterdir()) if (f / SEAL).is_file()]
    per_kind: dict[str, dict[str, float]] = {kind(f): dict.fromkeys(HASHES, 0.0) for f in folders}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; read the shares rather than the times")
    print(f"hashing each cached file, median of {args.runs} (page cache warm)")
    print(f"{'file':>40} {'MB':>7} " + " ".join(f"{name + ' ms':>12}" for name in HASHES))
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            times = {name: hash_time(path, make, args.runs) for name, make in HASHES.items()}
            for name, seconds in times.items():
                per_kind[kind(folder)][name] += seconds
            if path.stat().st_size >= 1 << 20:  # the small JSON files take microseconds
                shown = f"{kind(folder)}/{path.relative_to(folder)}"
                columns = " ".join(f"{t * 1e3:12.1f}" for t in times.values())
                print(f"{shown:>40} {path.stat().st_size / 1e6:7.1f} {columns}")
    print(f"\nloads, median of {args.runs} fresh processes (imports included); the seal check is xxh3-128")
    print(f"{'load':>22} {'load ms':>9} {'check ms':>9} {'share':>6}   " + "   ".join(f"{n} would be" for n in HASHES))
    for name, (load, kinds) in LOADS.items():
        total, check = load_time(args.cache, load, args.runs)
        would = {h: sum(per_kind[k][h] for k in kinds) for h in HASHES}
        print(
            f"{name:>22} {total * 1e3:9.0f} {check * 1e3:9.1f} {check / total:6.1%}   "
            + "   ".join(f"{would[h] * 1e3:7.1f} ms {would[h] / total:5.1%}" for h in HASHES)
        )


if __name__ == "__main__":
    main()
