"""Which language a passage is written in, as far as ranking needs to know: Korean or not, by its share of Hangul.

Only two scripts meet in this tool's notes (Hangul and Latin), so counting letters is enough: microseconds a
passage, where a language identifier would load a model. Worked out from the manifest's text when an index is first
ranked, so no stored format changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
LETTER = re.compile(r"[^\W\d_]")
KOREAN_SHARE = 0.3  # of a text's letters in Hangul: Korean prose that keeps API names and code in English is Korean


def is_korean(text: str) -> bool:
    letters = len(LETTER.findall(text))
    return letters > 0 and len(HANGUL.findall(text)) >= KOREAN_SHARE * letters


def passage_languages(texts: Iterable[str]) -> np.ndarray:
    """True for each Korean passage."""
    return np.fromiter((is_korean(text) for text in texts), dtype=bool)
