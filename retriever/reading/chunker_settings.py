"""The chunker's settings, apart from the chunker: every Retriever holds them and a question compares them with
the index's, while the chunker itself (with the note structure parsers and yaml behind it) is only for building;
importing it cost a cold question ~27 ms."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ChunkerSettings:
    """Everything that changes chunk boundaries; it is part of the index fingerprint."""

    max_tokens: int = 256
    part_tokens: int = 64  # sub-chunks scored inside a chunk: one bullet, or a few sentences
    version: int = 10  # bump when the algorithm or Kiwi's set-up changes, so existing indexes are seen as stale

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
