"""A real Milvus server for the opt-in test and the bench row, from PyPI's `milvus==2.3.5` (a standalone server
binary), kept off the machine's network.

    .venv/bin/python bench/milvus_server.py start DIR   # prints the PID once it listens, then returns
    nsenter --net=/proc/PID/ns/net COMMAND              # COMMAND reaches it at milvus://127.0.0.1:19530/NAME
    .venv/bin/python bench/milvus_server.py stop PID

Authentication is on, with Milvus's default user: COMMAND needs RETRIEVER_MILVUS_TOKEN=root:Milvus (TOKEN here).
The server binds every interface and ignores SIGTERM, so it is started inside its own network namespace (`unshare
-n`, loopback up: nothing outside can reach it) and its whole process group is killed. Needs root (or unprivileged
user namespaces) and `pip install milvus==2.3.5`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PORT = 19530
TOKEN = "root:Milvus"  # the default superuser of a fresh server with authentication on
START = f"""
import sys, time
from milvus import default_server
default_server.set_base_dir(sys.argv[1])
default_server.listen_port = {PORT}
default_server.config.set("authorization_enabled", True)
default_server.start()
print("listening", flush=True)
while True:
    time.sleep(3600)
"""


def start(folder: Path, timeout: float = 180) -> int:
    """The PID of a server answering inside its own network namespace; nsenter into /proc/PID/ns/net to reach it."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "server.log"
    script = f"ip link set lo up && exec {sys.executable} -c '{START}' {folder}"
    with log.open("w") as handle:
        process = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", script], stdout=handle, stderr=handle, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if "listening" in log.read_text(errors="replace"):
            return process.pid
        time.sleep(0.5)
    stop(process.pid)
    raise RuntimeError(f"the Milvus server did not start; see {log}")


def stop(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def in_namespace(pid: int, *command: str) -> list[str]:
    return ["nsenter", f"--net=/proc/{pid}/ns/net", *command]


if __name__ == "__main__":
    if sys.argv[1:2] == ["start"] and len(sys.argv) == 3:
        print(start(Path(sys.argv[2])))
    elif sys.argv[1:2] == ["stop"] and len(sys.argv) == 3:
        stop(int(sys.argv[2]))
    else:
        raise SystemExit(__doc__)
