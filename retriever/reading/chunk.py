"""What a chunk is: what every later stage stores and reads.

The index format, the build's checkpoints and the search stage hold chunks and parts and key them by their content
hash, but none of them cuts a note: these types live apart from the chunker (`chunking.py`), so that reading a
chunk does not import the structure readers and the Korean sentence splitter that cut one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Chunk:
    path: str
    headings: tuple[str, ...]
    start_line: int
    end_line: int
    text: str
    tags: tuple[str, ...] = ()
    date: str = ""  # the note's front-matter date (ISO); without one, filters date it by its file's mtime

    @property
    def heading(self) -> str:
        return self.headings[-1] if self.headings else ""

    @property
    def embed_text(self) -> str:
        return with_headings(self.headings, self.text)

    @cached_property
    def content_hash(self) -> str:
        """Kept once computed: a build asks for it of every chunk, old and new, up to three times."""
        return content_hash(self.embed_text)


@dataclass(frozen=True)
class Part:
    """A sub-chunk: a question often targets one bullet, which a whole-chunk vector dilutes. Its vector is pooled
    from its span of the chunk's own forward pass (late chunking), so it costs no pass of its own and reads its words
    in the context of the whole section."""

    chunk: int  # row of its chunk
    start: int  # characters [start, end) of the chunk's text that the part was cut from
    end: int


def with_headings(headings: tuple[str, ...], text: str) -> str:
    """The heading path goes in with the text: bullets alone lose what question they answer."""
    head = " > ".join(h for h in headings if h)
    return f"{head}\n{text}" if head else text


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
