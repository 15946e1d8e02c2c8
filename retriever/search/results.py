"""What a search returns, as plain data: built by the API, sent as JSON by the server, read back by the CLI.

Kept free of numpy and models so that a command answered by a running server imports almost nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..reading.chunk import Chunk


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
    tags: tuple[str, ...] = ()  # the note's, from its front matter
    headings: tuple[str, ...] = ()  # the heading path, the note's title first: "Description" alone says little
    highlights: tuple[tuple[int, int], ...] = ()  # character spans of text that are words of the question

    @property
    def id(self) -> str:
        """Where the passage is, as `get` takes it: the note's path and the passage's first line."""
        return f"{self.path}#{self.start_line}"

    @classmethod
    def of(cls, rank: int, score: float, chunk: Chunk, explain: dict[str, dict[str, float]] | None) -> Hit:
        return cls(
            rank,
            round(score, 4),
            chunk.path,
            chunk.heading,
            chunk.start_line,
            chunk.end_line,
            chunk.text,
            explain,
            chunk.tags,
            chunk.headings,
        )

    def to_json(self) -> dict[str, Any]:
        data = {"id": self.id, **asdict(self)}
        if self.explain is None:
            del data["explain"]
        return data

    @classmethod
    def from_json(cls, data: Any) -> Hit:
        """A hit as a server sent it; ValueError for anything shaped otherwise, so that a garbled answer is
        no answer rather than a crash later, when it is printed."""
        try:
            found = {f.name: data[f.name] for f in fields(cls) if f.name in data}
            spans = tuple((int(start), int(end)) for start, end in found.get("highlights", ()))
            hit = cls(
                **found | {name: tuple(found.get(name, ())) for name in ("tags", "headings")} | {"highlights": spans}
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a hit: {exc}") from None
        if not hit.well_typed():
            raise ValueError("not a hit: a field of the wrong type")
        return hit

    def well_typed(self) -> bool:
        explain = self.explain
        shaped = explain is None or isinstance(explain, dict) and all(isinstance(c, dict) for c in explain.values())
        if not shaped:
            return False
        numbers = (self.score, *(value for channel in (explain or {}).values() for value in channel.values()))
        texts = (self.path, self.heading, self.text, *self.tags, *self.headings, getattr(self, "question", ""))
        return (
            all(type(value) is int for value in (self.rank, self.start_line, self.end_line))
            and all(type(value) in (int, float) for value in numbers)
            and all(isinstance(value, str) for value in texts)
        )


@dataclass(frozen=True)
class QuestionHit(Hit):
    """A note's own question that resembles the asked one; text is the passage of its answer that fits best."""

    question: str = ""

    @classmethod
    def asking(cls, hit: Hit, question: str) -> QuestionHit:
        return cls(**vars(hit), question=question)
