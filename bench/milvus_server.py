"""A real Milvus server for the opt-in test and the bench row, from PyPI's `milvus==2.3.5` (a standalone server
binary), kept off the machine's network.

    .venv/bin/python bench/milvus_server.py start DIR   # prints the namespace's PID once the server listens
    nsenter --net=/proc/PID/ns/net COMMAND              # COMMAND reaches it at milvus://127.0.0.1:19530/NAME
    .venv/bin/python bench/milvus_server.py restart PID DIR
    .venv/bin/python bench/milvus_server.py stop PID

Authentication is on, with Milvus's default user: COMMAND needs RETRIEVER_MILVUS_TOKEN=root:Milvus (TOKEN here), or
RETRIEVER_MILVUS_USER=root and RETRIEVER_MILVUS_PASSWORD=Milvus. The server binds every interface and ignores
SIGTERM, so it runs inside a network namespace of its own (`unshare -n`, loopback up: nothing outside can reach it)
that a `sleep` holds open: the server can then be killed and started again (a restart) at the same address, under
clients that stay in the namespace. Needs root (or unprivileged user namespaces) and `pip install milvus==2.3.5`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

PORT = 19530
TOKEN = "root:Milvus"  # the default superuser of a fresh server with authentication on
# The package checks each port free by binding it without SO_REUSEADDR, and takes the next port when that fails. A
# killed server's connections leave its port in TIME_WAIT for 60 s, so a restart would move the server to 19532 and
# strand every client at 19530. The server itself binds with SO_REUSEADDR, as a Milvus restarted anywhere does and
# gets its port back at once; the check is made to bind the same way.
START = f"""
import socket, sys, time
from milvus import default_server

def free(port):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
    except OSError:
        sock.close()
        return None
    return sock

default_server.config.try_bind_port = free
default_server.set_base_dir(sys.argv[1])
default_server.listen_port = {PORT}
default_server.config.set("authorization_enabled", True)
default_server.start()
print("listening on", default_server.listen_port, flush=True)
while True:
    time.sleep(3600)
"""


def start(folder: Path, timeout: float = 180) -> int:
    """The PID holding the server's network namespace; nsenter into /proc/PID/ns/net to reach the server."""
    folder.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        ["unshare", "-n", "sh", "-c", "ip link set lo up && exec sleep infinity"], start_new_session=True
    )
    while os.readlink(f"/proc/{holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
        time.sleep(0.05)  # until unshare has made the namespace
    try:
        launch(holder.pid, folder, timeout)
    except RuntimeError:
        stop(holder.pid)
        raise
    return holder.pid


def launch(pid: int, folder: Path, timeout: float) -> None:
    """The server in pid's namespace, over the data in folder (a restart finds its collections there)."""
    log = folder / "server.log"
    with log.open("w") as handle:
        server = subprocess.Popen(
            in_namespace(pid, sys.executable, "-c", START, str(folder)),
            stdout=handle,
            stderr=handle,
            start_new_session=True,
        )
    (folder / "server.pid").write_text(str(server.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        said = re.search(r"listening on (\d+)", log.read_text(errors="replace"))
        if said and int(said[1]) == PORT:
            return
        if said:  # clients would wait at PORT for nobody
            kill_group(server.pid)
            raise RuntimeError(f"the Milvus server took port {said[1]}, not {PORT} (in use); see {log}")
        time.sleep(0.5)
    raise RuntimeError(f"the Milvus server did not start; see {log}")


def restart(pid: int, folder: Path, down: float = 0.0, timeout: float = 180) -> None:
    """Kill the server, stay down `down` seconds, and start it again at the same address."""
    crash(folder)
    time.sleep(down)
    launch(pid, folder, timeout)


def crash(folder: Path) -> None:
    """Kill the server as a crash would, and wait until it is gone; `launch` brings it back."""
    server = int((folder / "server.pid").read_text())
    kill_group(server)
    while any(True for _ in members(server)):
        time.sleep(0.1)


def members(group: int) -> list[int]:
    """The live processes of a process group; a zombie (the server, when its parent has not reaped it) is dead."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            live = entry.name.isdigit() and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
            if live and os.getpgid(int(entry.name)) == group:
                found.append(int(entry.name))
        except (ProcessLookupError, FileNotFoundError):
            pass
    return found


def kill_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop(pid: int) -> None:
    """Kill every process in pid's namespace (the server, its children, the holder, any client left there)."""
    try:
        namespace = os.readlink(f"/proc/{pid}/ns/net")
    except FileNotFoundError:
        return
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "ns" / "net") == namespace:
                os.kill(int(entry.name), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass


def in_namespace(pid: int, *command: str) -> list[str]:
    return ["nsenter", f"--net=/proc/{pid}/ns/net", *command]


if __name__ == "__main__":
    if sys.argv[1:2] == ["start"] and len(sys.argv) == 3:
        print(start(Path(sys.argv[2])))
    elif sys.argv[1:2] == ["restart"] and len(sys.argv) == 4:
        restart(int(sys.argv[2]), Path(sys.argv[3]))
    elif sys.argv[1:2] == ["stop"] and len(sys.argv) == 3:
        stop(int(sys.argv[2]))
    else:
        raise SystemExit(__doc__)
