"""One Kiwi (Korean morphological analyser) per process: it takes ~1.5 s to load, so only when first needed, and
possibly from a loader thread while the main thread loads a model, hence the lock."""

from __future__ import annotations

import threading
from functools import cache

_loading = threading.Lock()


@cache
def _load():
    from kiwipiepy import Kiwi

    analyser = Kiwi()
    analyser.tokenize("준비")  # Kiwi loads its model on the first analysis; do it here, where loading is expected
    return analyser


def kiwi():
    with _loading:
        return _load()
