"""Model files built once from registry packages into the user's cache, and sealed like the index.

A cached folder (the converted e5, its int8 graph, USE's uncompressed weights) is built into a temp sibling and
renamed into place under a file lock, so a killed build is never mistaken for a finished one. The build records the
SHA-256 and size of every file in SEAL.json. A load compares each file's stat stamp (size, mtime, inode) with the
one last seen intact and hashes a file in full only when its stamp moved, so a cold question pays a few stat calls.
A file that no longer matches its seal (flipped bytes, a truncated or emptied file) gets the folder rebuilt from the
package; a folder that cannot be rebuilt is one line naming what to delete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from ..errors import RetrieverError
from ..integrity import sha256_file

SEAL = "SEAL.json"  # {file: [sha256, size]}, written by the build
STAMPS = "STAMPS.json"  # {file: [size, mtime_ns, inode]} last seen intact; rewritten when a stamp moves


def built_once(final: Path, build: Callable[[Path], None]) -> Path:
    """final, built by build(folder) (which creates folder) once if absent or no longer intact. Atomic: built into
    a temp sibling folder, then renamed, under a filelock.FileLock on a sibling .lock file so two processes don't
    build at once."""
    if final.is_dir() and intact(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if final.is_dir() and intact(final):
            return final
        tmp_prefix = f"{final.name}.tmp-"
        for stale in final.parent.iterdir():  # left by killed builds: nobody else builds while we hold the lock
            if stale.name.startswith(tmp_prefix):
                shutil.rmtree(stale)
        tmp = final.parent / f"{tmp_prefix}{os.getpid()}"
        try:
            build(tmp)
            seal(tmp)
            if final.is_dir():  # altered: set aside, then replaced whole
                aside = final.parent / f"{tmp_prefix}{os.getpid()}-altered"
                os.rename(final, aside)
                shutil.rmtree(aside, ignore_errors=True)
            os.rename(tmp, final)
        except OSError as exc:
            raise RetrieverError(
                f"the model cache at {final} could not be rebuilt ({exc.strerror or exc}); delete that folder and retry"
            ) from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def seal(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith((SEAL, STAMPS)))
    (folder / SEAL).write_text(json.dumps({rel(p, folder): [sha256_file(p), p.stat().st_size] for p in files}))
    write_stamps(folder, {rel(p, folder): stamp(p) for p in files})


def intact(folder: Path) -> bool:
    """Whether every sealed file is there as built. A folder without a seal (built before seals were kept) is
    sealed now, as found: it is trusted once, as it was before."""
    try:
        sealed = json.loads((folder / SEAL).read_text())
    except FileNotFoundError:
        try:
            seal(folder)
        except OSError:
            pass  # a read-only cache stays as it is
        return True
    except (OSError, ValueError):
        return False
    try:
        seen = json.loads((folder / STAMPS).read_text())
    except (OSError, ValueError):
        seen = {}
    moved = False
    for name, (digest, size) in sealed.items():
        path = folder / name
        try:
            now = stamp(path)
        except OSError:
            return False
        if now == seen.get(name):
            continue
        if now[0] != size or sha256_file(path) != digest:
            return False
        seen[name], moved = now, True
    if moved:
        try:
            write_stamps(folder, seen)
        except OSError:
            pass  # read-only: hashed again next time
    return True


def write_stamps(folder: Path, stamps: dict[str, list[int]]) -> None:
    partial = folder / f".{STAMPS}.{os.getpid()}"
    partial.write_text(json.dumps(stamps))
    os.replace(partial, folder / STAMPS)


def stamp(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def rel(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()
