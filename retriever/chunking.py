"""Notes → sections → chunks.

A Q&A note is a heading (the question) followed by bullets (the answer), so the heading is the unit of meaning:
a section that fits the model becomes one chunk, and a longer one is cut on line, then sentence, then word
boundaries, each piece still carrying its heading path into the embedded text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import cache

from .notes import Note

HEADING = re.compile(r"^(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+$")
FENCE = re.compile(r"^[ \t]*(```|~~~)")

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class ChunkerSettings:
    """Everything that changes chunk boundaries; it is part of the index fingerprint."""

    max_tokens: int = 256
    version: int = 1  # bump when the algorithm changes, so existing indexes are seen as stale

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Section:
    path: str
    headings: tuple[str, ...]  # outermost first; empty for text before the first heading
    start_line: int  # 1-based, the heading line
    end_line: int  # last non-blank line of the body
    body: str
    body_start: int  # line of the body's first line, to number pieces of a split section

    @property
    def title(self) -> str:
        return self.headings[-1] if self.headings else ""


@dataclass(frozen=True)
class Chunk:
    path: str
    headings: tuple[str, ...]
    start_line: int
    end_line: int
    text: str

    @property
    def heading(self) -> str:
        return self.headings[-1] if self.headings else ""

    @property
    def embed_text(self) -> str:
        """The heading path goes in with the body: bullets alone lose what question they answer."""
        head = " > ".join(h for h in self.headings if h)
        return f"{head}\n{self.text}" if head else self.text

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.embed_text.encode("utf-8")).hexdigest()[:32]


def heading_of(line: str) -> tuple[int, str] | None:
    match = HEADING.match(line)
    if not match:
        return None
    title = CLOSING_HASHES.sub("", match.group(2) or "").strip()
    return len(match.group(1)), title


def split_sections(note: Note) -> list[Section]:
    """Sections whose body has any words; headings inside fenced code blocks are text, not structure."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    heading_line: int | None = None  # None for text before the first heading
    body_origin, body_lines, in_fence = 1, [], False

    def close() -> None:
        numbered = [(body_origin + i, line) for i, line in enumerate(body_lines)]
        kept = [n for n, line in numbered if line.strip()]
        if not any(ch.isalnum() for _, line in numbered for ch in line):  # blank, or only a rule like "-----"
            return
        first, last = kept[0], kept[-1]
        body = "\n".join(line for n, line in numbered if first <= n <= last)
        headings = tuple(title for _, title in stack)
        sections.append(Section(note.path, headings, heading_line or first, last, body, first))

    for number, line in enumerate(note.text.split("\n"), start=1):
        if FENCE.match(line):
            in_fence = not in_fence
        found = None if in_fence else heading_of(line)
        if found is None:
            body_lines.append(line)
            continue
        close()
        level, title = found
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        heading_line, body_origin, body_lines = number, number + 1, []
    close()
    return sections


@cache
def _kiwi():  # noqa: ANN202 - kiwipiepy has no stubs; loading costs ~1.5 s, so only when a line is too long
    from kiwipiepy import Kiwi

    return Kiwi()


def split_sentences(text: str) -> list[str]:
    """Korean-aware sentence boundaries (Kiwi handles endings like 함/음 without a period)."""
    return [s.text for s in _kiwi().split_into_sents(text)] or [text]


@dataclass(frozen=True)
class Piece:
    line: int
    text: str
    tokens: int
    glue: str  # what joins it to the piece before: a newline, a space, or nothing inside a cut word


def split_words(text: str, budget: int, count: TokenCounter) -> Iterator[tuple[str, str]]:
    """Last resort for one over-long sentence: (glue, text) runs of whole words, and a word longer than the
    budget cut by characters.

    A character yields at most one token plus the word-start marker, so budget-1 characters always fit, and a
    Python string index never falls inside an NFC Hangul syllable.
    """
    piece: list[str] = []
    used = 0
    for word in text.split():
        size = count(word)
        if piece and (size > budget or used + size > budget):
            yield " ", " ".join(piece)
            piece, used = [], 0
        if size > budget:
            step = max(budget - 1, 1)
            yield from ((" " if i == 0 else "", word[i : i + step]) for i in range(0, len(word), step))
            continue
        piece.append(word)
        used += size
    if piece:
        yield " ", " ".join(piece)


def pieces_of(section: Section, budget: int, count: TokenCounter) -> Iterator[Piece]:
    """The section body as pieces no larger than the budget, in order: lines, else sentences, else words."""
    for offset, line in enumerate(section.body.split("\n")):
        if not line.strip():
            continue
        number = section.body_start + offset
        size = count(line)
        if size <= budget:
            yield Piece(number, line, size, "\n")
            continue
        glue = "\n"
        for sentence in split_sentences(line.strip()):
            size = count(sentence)
            if size <= budget:
                yield Piece(number, sentence, size, glue)
            else:
                for i, (inner, text) in enumerate(split_words(sentence, budget, count)):
                    yield Piece(number, text, count(text), glue if i == 0 else inner)
            glue = " "


def chunk_section(section: Section, settings: ChunkerSettings, count: TokenCounter) -> list[Chunk]:
    whole = Chunk(section.path, section.headings, section.start_line, section.end_line, section.body)
    if count(whole.embed_text) <= settings.max_tokens:
        return [whole]
    head = " > ".join(h for h in section.headings if h)
    budget = max(settings.max_tokens - count(head), 8)
    chunks: list[Chunk] = []
    group: list[Piece] = []

    def flush() -> None:
        if not group:
            return
        text = group[0].text + "".join(p.glue + p.text for p in group[1:])
        start = section.start_line if not chunks else group[0].line
        chunks.append(Chunk(section.path, section.headings, start, group[-1].line, text))
        group.clear()

    for piece in pieces_of(section, budget, count):
        if group and sum(p.tokens for p in group) + piece.tokens > budget:
            flush()
        group.append(piece)
    flush()
    return chunks


def chunk_note(note: Note, settings: ChunkerSettings, count: TokenCounter) -> list[Chunk]:
    return [chunk for section in split_sections(note) for chunk in chunk_section(section, settings, count)]
