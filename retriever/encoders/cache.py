"""Model files built once from registry packages into the user's cache, and sealed like the index.

A cached folder (the converted e5, its int8 graph, USE's uncompressed weights) is built into a temp sibling and
renamed into place under a file lock, so a killed build is never mistaken for a finished one and two processes
never build at once. The build records the xxh3-128 digest and size of every file in SEAL.json, and every load
hashes every file again before anything reads it: a file's stat stamp (size, mtime, inode) can stay the same while
its bytes change in place, so only the bytes tell. xxh3 over a memory map hashes at memory speed: the check is
1.5-3 % of each model's load (bench/model_seal.py: ~70 ms of a 3.3 s e5 load on a busy machine), where SHA-256
would be 10-32 %. The seal sits beside the files it vouches for, so a cryptographic hash would guard against
nothing more. A folder that does not match its seal, or has none, is rebuilt from its package with a one-line note
on stderr; one that cannot be rebuilt is one line naming what to delete.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import xxhash

from ..errors import RetrieverError

SEAL = "SEAL.json"  # {"hash": HASH, "files": {file: [digest, size]}}, written by the build
HASH = "xxh3_128"


class Hasher(Protocol):
    def update(self, data: mmap.mmap, /) -> None: ...

    def hexdigest(self) -> str: ...


def built_once(final: Path, build: Callable[[Path], None], source: str) -> Path:
    """final, built by build(folder) (which creates folder) from source (named in the note) if absent or not as
    sealed. Atomic: built into a temp sibling folder, then renamed, under a filelock.FileLock on a sibling .lock
    file so two processes don't build at once; the second finds the first one's folder intact."""
    if damage(final) is None:
        return final
    from filelock import FileLock  # only to build: a sealed folder, what every question finds, needs no lock

    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        why = damage(final)
        if why is None:
            return final
        existed = final.exists()
        tmp_prefix = f"{final.name}.tmp-"
        for stale in final.parent.iterdir():  # left by killed builds: nobody else builds while we hold the lock
            if stale.name.startswith(tmp_prefix):
                shutil.rmtree(stale)
        tmp = final.parent / f"{tmp_prefix}{os.getpid()}"
        try:
            build(tmp)
            seal(tmp)
            if existed:  # altered: set aside, then replaced whole
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
    if existed:
        print(f"note: model cache {final.name} rebuilt from {source}: {why}", file=sys.stderr)
    return final


def seal(folder: Path) -> None:
    files = {rel(p, folder): [digest(p), p.stat().st_size] for p in contents(folder)}
    (folder / SEAL).write_text(json.dumps({"hash": HASH, "files": files}))


def damage(folder: Path) -> str | None:
    """Why folder is not as its build left it (a file missing, added, or whose bytes differ from the seal), or None.
    Every file is hashed in full; a file that vanishes meanwhile (another process replacing the folder) counts as
    missing, and the caller re-checks under the lock."""
    if not folder.is_dir():
        return "absent"
    sealed = read_seal(folder)
    if sealed is None:
        return f"its {SEAL} is missing, unreadable or from an older version"
    found = {rel(p, folder) for p in contents(folder)}
    if found != set(sealed):
        name = min(found ^ set(sealed))
        return f"{name} is {'missing' if name in sealed else 'not in its seal'}"
    for name, (expected, size) in sealed.items():
        path = folder / name
        try:
            if path.stat().st_size != size or digest(path) != expected:
                return f"{name} does not match its seal"
        except OSError:
            return f"{name} is missing"
    return None


def read_seal(folder: Path) -> dict[str, tuple[str, int]] | None:
    try:
        sealed = json.loads((folder / SEAL).read_text())
    except (OSError, ValueError):
        return None
    files = sealed.get("files") if isinstance(sealed, dict) and sealed.get("hash") == HASH else None
    if not isinstance(files, dict):
        return None
    out = {}
    for name, entry in files.items():
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and type(entry[1]) is int):
            return None
        out[name] = (entry[0], entry[1])
    return out


def digest(path: Path, hasher: Callable[[], Hasher] = xxhash.xxh3_128) -> str:
    """The file's digest, hashed through a memory map: reading it in blocks copies every byte once more, which
    made xxh3 three times slower (bench/model_seal.py takes the other hashes through here too)."""
    hashing = hasher()
    with path.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size:  # an empty file cannot be mapped
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                hashing.update(mapped)
    return hashing.hexdigest()


def contents(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != SEAL)


def rel(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()
