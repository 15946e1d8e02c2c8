"""One Kiwi (Korean morphological analyser) per process: it takes ~1 s to load, so only when first needed, and
possibly from a loader thread while the main thread loads a model, hence the lock."""

from __future__ import annotations

import re
import threading
from functools import cache

UNBROKEN = 100  # characters without a space: not prose but base64, a minified script or one syllable repeated,
# which Kiwi reads at up to 45 µs a character, against 7 µs for prose; callers keep such runs from it
UNBROKEN_RUN = re.compile(rf"\w{{{UNBROKEN},}}")  # for BM25, word characters only: a long URL's words stay words

_loading = threading.Lock()


@cache
def _load():
    from kiwipiepy import Kiwi

    # Without the multi-word dictionary (WikiData names spanning several words): it is 1.3 s of Kiwi's 2.4 s
    # load, which a cold question waits for, and it changed no token or sentence boundary of notes/, the kobill
    # corpus or either dev set's questions (2 328 lines). Part of the chunker settings' version, since sentences
    # and BM25 tokens come from here.
    analyser = Kiwi(load_multi_dict=False)
    analyser.tokenize("준비")  # Kiwi loads its model on the first analysis; do it here, where loading is expected
    return analyser


def kiwi():
    with _loading:
        return _load()
