"""What a search returns, as plain data: built by the API, sent as JSON by the server, read back by the CLI.

Kept free of numpy and models so that a command answered by a running server imports almost nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chunking import Chunk


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    path: str
    heading: str
    start_line: int
    end_line: int
    text: str
    explain: dict[str, dict[str, float]] | None = None  # per channel: its scores and its share of the rank

    @property
    def id(self) -> str:
        """Where the passage is, as `get` takes it: the note's path and the passage's first line."""
        return f"{self.path}#{self.start_line}"

    @classmethod
    def of(cls, rank: int, score: float, chunk: Chunk, explain: dict[str, dict[str, float]] | None) -> Hit:
        return cls(
            rank, round(score, 4), chunk.path, chunk.heading, chunk.start_line, chunk.end_line, chunk.text, explain
        )

    def to_json(self) -> dict[str, Any]:
        data = {"id": self.id, **asdict(self)}
        if self.explain is None:
            del data["explain"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hit:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class QuestionHit(Hit):
    """A note's own question that resembles the asked one; text is its answer."""

    question: str = ""

    @classmethod
    def of(cls, rank: int, score: float, chunk: Chunk, explain: dict[str, dict[str, float]] | None) -> QuestionHit:
        return cls(**vars(Hit.of(rank, score, chunk, explain)), question=chunk.heading)
