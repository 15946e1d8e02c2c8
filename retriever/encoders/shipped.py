"""Files that installed packages ship (model weights, tokenizer models), checked against the package's RECORD.

The model cache is rebuilt from these files, and USE's tokenizer model is read straight from site-packages, so a
damaged package must be told apart from a damaged cache: nothing can be rebuilt from it, only reinstalled. pip
records every installed file's SHA-256 and size in the distribution's RECORD; a file without a recorded hash (an
install that kept none) is used as installed, since there is nothing to compare it with.
"""

from __future__ import annotations

import base64
import hashlib
from importlib.metadata import PackageNotFoundError, PackagePath, distribution
from pathlib import Path

from ..errors import RetrieverError


def shipped(package: str, path: Path) -> Path:
    """path, a file that the distribution `package` installed, once its bytes match the RECORD's hash and size."""
    entry = recorded(package, path)
    if entry is None or entry.hash is None or entry.hash.mode != "sha256":
        return path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise damaged(package, entry, exc.strerror or str(exc)) from exc
    expected = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4))
    if (entry.size is not None and len(data) != entry.size) or hashlib.sha256(data).digest() != expected:
        raise damaged(package, entry, "does not match the package's RECORD")
    return path


def recorded(package: str, path: Path) -> PackagePath | None:
    """The RECORD's line for path, if the distribution `package` installed it."""
    try:
        installed = distribution(package)
        name = path.resolve().relative_to(Path(str(installed.locate_file(""))).resolve()).as_posix()
    except (PackageNotFoundError, ValueError):  # not installed, or not by this distribution
        return None
    return next((f for f in installed.files or [] if f.as_posix() == name), None)


def damaged(package: str, entry: PackagePath, why: str) -> RetrieverError:
    return RetrieverError(
        f"the installed package {package} is damaged: {entry} {why}; reinstall it: "
        f"pip install --force-reinstall --no-deps {package}"
    )
