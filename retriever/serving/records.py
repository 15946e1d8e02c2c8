"""Where a running server is written down: for `retriever serve`, `server.json` in its index folder, which `ask`
finds it by; for it and `retriever mcp --http`, one entry in the user's registry of servers, which `retriever
status` lists and `retriever stop` ends.

Both hold the server's secret, so both belong to the user alone: each file is created with mode 0600 under a
temporary name and renamed into place (no moment where it is whole but readable by others, or readable but half
written), the registry is a 0700 folder, and a record another user wrote is never believed, since whoever wrote it
chose its secret. A record is only as good as its process: one whose pid is gone is removed when it is read.

Imports only the standard library, as client.py does.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ADDRESS_FILE = "server.json"  # under the index folder
PRIVATE = 0o600
KINDS = ("serve", "mcp")  # the command that runs the server: the routes its record's url answers


@dataclass(frozen=True)
class Record:
    url: str
    pid: int
    notes: str  # Library.identity() of the notes served
    index: str  # the index folder, resolved
    token: str  # the secret every request carries, and the proof of the server's identity is keyed with
    idle: float  # seconds without a request before it exits; 0: never
    kind: str = "serve"  # one of KINDS

    @classmethod
    def of(cls, data: Any) -> Record:
        """From JSON; ValueError for anything else."""
        try:
            record = cls(
                str(data["url"]),
                int(data["pid"]),
                str(data["notes"]),
                str(data["index"]),
                str(data["token"]),
                float(data["idle"]),
                str(data["kind"]),
            )
        except (KeyError, TypeError, OverflowError) as exc:
            raise ValueError(f"not a record: {exc}") from None
        if not record.url.startswith("http://127.0.0.1:") or not record.token or record.kind not in KINDS:
            raise ValueError("not a loopback server's record")
        return record


def write(path: Path, record: Record) -> None:
    """Atomically, created private: the secret is never in a file another user can read, even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(asdict(record), file)
    os.replace(tmp, path)


def read(path: Path) -> Record | None:
    """The record at `path` if this user wrote it, kept it private, and its process lives; a dead one is removed."""
    try:
        with open(path, encoding="utf-8") as file:
            info = os.fstat(file.fileno())
            if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
                return None  # another user's, or readable by others: its secret proves nothing
            record = Record.of(json.load(file))
    except (OSError, ValueError):
        return None
    if not alive(record.pid):
        remove(path, record.pid)
        return None
    return record


def remove(path: Path, pid: int) -> None:
    """Only the record of this pid: another server may have taken the index over since."""
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def alive(pid: int) -> bool:
    """Whether a process has this id (Unix: signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        pass  # there is one, another user's
    return True


def address(index: Path) -> Path:
    return index / ADDRESS_FILE


def registry() -> Path | None:
    """The user's folder of running servers (RETRIEVER_RUN_DIR, else under the user's cache folder), made 0700;
    None when it cannot be made or is not this user's alone."""
    configured = os.environ.get("RETRIEVER_RUN_DIR")
    if configured:
        folder = Path(configured)
    else:
        from platformdirs import user_cache_path

        folder = user_cache_path("retriever") / "servers"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
        if info.st_uid != os.getuid():
            return None
        if stat.S_IMODE(info.st_mode) != 0o700:
            folder.chmod(0o700)
    except OSError:
        return None
    return folder


def enter(record: Record) -> None:
    """Into the registry, where `status` finds it; a server that cannot write there still serves."""
    folder = registry()
    if folder is not None:
        try:
            write(folder / f"{record.pid}.json", record)
        except OSError:
            pass


def leave(pid: int) -> None:
    folder = registry()
    if folder is not None:
        remove(folder / f"{pid}.json", pid)


def entered(pid: int) -> bool:
    """Whether the registry still holds this pid's entry, which its server removes as it exits."""
    folder = registry()
    return folder is not None and (folder / f"{pid}.json").exists()


def running() -> list[Record]:
    """Every live server in the registry, oldest pid first; the entries of dead ones are removed as they are read."""
    folder = registry()
    if folder is None:
        return []
    found = (read(path) for path in sorted(folder.glob("*.json")))
    return sorted((record for record in found if record is not None), key=lambda record: record.pid)
