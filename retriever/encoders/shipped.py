"""Files that installed packages ship (model weights, tokenizer models), checked against the package's RECORD.

The model cache is rebuilt from these files, and USE's tokenizer model is read straight from site-packages, so a
damaged package must be told apart from a damaged cache: nothing can be rebuilt from it, only reinstalled. pip
records every installed file's SHA-256 and size in the distribution's RECORD; a file without a recorded hash (an
install that kept none) is used as installed, since there is nothing to compare it with.
"""

from __future__ import annotations

import base64
import hashlib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from ..errors import RetrieverError


def shipped(package: str, path: Path) -> Path:
    """path, a file that the distribution `package` installed, once its bytes match the RECORD's hash and size."""
    try:
        files = distribution(package).files or []
    except PackageNotFoundError:
        return path
    target = path.resolve()
    entry = next((f for f in files if Path(str(f.locate())).resolve() == target), None)
    if entry is None or entry.hash is None or entry.hash.mode != "sha256":
        return path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise damaged(package, entry, exc.strerror or str(exc)) from exc
    recorded = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4))
    if (entry.size is not None and len(data) != entry.size) or hashlib.sha256(data).digest() != recorded:
        raise damaged(package, entry, "does not match the package's RECORD")
    return path


def damaged(package: str, entry: object, why: str) -> RetrieverError:
    return RetrieverError(
        f"the installed package {package} is damaged: {entry} {why}; reinstall it: "
        f"pip install --force-reinstall --no-deps {package}"
    )
