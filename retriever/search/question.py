"""A question as every channel sees it: valid text, NFC, and cut once to one budget.

Each channel bounded on its own would leave the others exposed: before, only e5 truncated, so a 1 MB question
went whole through USE and Kiwi (30 s and 5.5 GB). The cut is made here, once, and every channel ranks the same
text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import RetrieverError
from ..reading.notes import normalise

if TYPE_CHECKING:
    from ..encoders import Encoder

# Far beyond any question the primary model can read (512 tokens run to ~2 000 characters of English or Korean),
# and small enough that tokenising or morpheme-analysing it costs milliseconds.
MAX_QUESTION_CHARS = 4096
MAX_K = 100  # results one question may ask for: a page of answers, not an export of the index
METHODS = ("ask", "similar")  # the two ways to ask, served by name over HTTP and MCP


@dataclass(frozen=True)
class Question:
    text: str
    length: int  # characters before any cut

    @property
    def notice(self) -> str | None:
        if len(self.text) >= self.length:
            return None
        return f"the question is {self.length} characters long; only its first {len(self.text)} are used"


def valid_text(raw: object, what: str = "the question") -> str:
    """The question as text a tokenizer can take: lone surrogates (from undecodable bytes on the command line or
    a \\ud800 escape in JSON) would fail deep inside a model with a TypeError. U+FFFD is what a decoder leaves
    of invalid bytes (the MCP transport's, for one), so it is refused alike: every route says the same."""
    if not isinstance(raw, str):
        raise RetrieverError(f"{what} must be text")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise RetrieverError(f"{what} is not valid Unicode text (invalid UTF-8 or a lone surrogate)") from None
    if "\ufffd" in raw:
        raise RetrieverError(f"{what} holds U+FFFD, what is left of text that was not valid UTF-8")
    return raw


def valid_k(k: object) -> int:
    """k as every route takes it, checked before any model or index is loaded: a whole number from 1 to MAX_K
    (not a bool, a float, a string or None), so a caller learns what to pass instead of a TypeError."""
    if type(k) is not int or not 1 <= k <= MAX_K:  # not isinstance: True is an int too
        raise RetrieverError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
    return k


def read_question(raw: object) -> Question:
    """Validated, normalised and cut to MAX_QUESTION_CHARS; an empty question is an error."""
    text = normalise(valid_text(raw)).strip()
    if not text:
        raise RetrieverError("the question is empty")
    return Question(text[:MAX_QUESTION_CHARS].rstrip(), len(text))


def clip_for(question: Question, encoder: Encoder) -> Question:
    """The question cut to what the encoder reads: its window less the special tokens and the query prompt."""
    window = getattr(encoder, "max_tokens", None)
    if not window:
        return question
    prompt = encoder.spec.prompts.get("query", "")
    return clip_to_tokens(question, encoder.count_tokens, window - 2 - encoder.count_tokens(prompt))


def clip_to_tokens(question: Question, count: Callable[[str], int], limit: int) -> Question:
    """The longest prefix of the question within `limit` tokens of the model that reads it first: found by
    halving over the character length (a dozen tokenisations of at most MAX_QUESTION_CHARS, only when too long),
    since the tokenizers at hand do not all give character offsets."""
    if count(question.text) <= limit:
        return question
    low, high = 0, len(question.text)  # the prefix of length low fits, that of length high does not
    while high - low > 1:
        middle = (low + high) // 2
        if count(question.text[:middle]) <= limit:
            low = middle
        else:
            high = middle
    return Question(question.text[:low].rstrip(), question.length)
