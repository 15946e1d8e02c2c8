"""One Kiwi (Korean morphological analyser) per process: it takes ~1.5 s to load, so only when first needed."""

from __future__ import annotations

from functools import cache


@cache
def kiwi():
    from kiwipiepy import Kiwi

    return Kiwi()
