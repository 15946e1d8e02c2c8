"""Notes → sections → chunks.

A Q&A note is a heading (the question) followed by bullets (the answer), so the heading is the unit of meaning:
a section that fits the model becomes one chunk, and a longer one is cut on line, then sentence, then word
boundaries, each piece still carrying its heading path into the embedded text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .chunk import Chunk, Part
from .chunker_settings import ChunkerSettings
from .headings.faq import is_question
from .headings.markup import markup_of
from .korean import UNBROKEN, kiwi
from .notes import Note
from .structure import FrontMatter, is_document, is_markdown, outline

TokenCounter = Callable[[str], int]
SENTENCE_WINDOW = 4000  # characters


BULLET = re.compile(r"^[ \t]*(?:[-*+•]|\d+[.)])[ \t]+")


@dataclass(frozen=True)
class Section:
    path: str
    headings: tuple[str, ...]  # outermost first; empty for text before the first heading
    start_line: int  # 1-based, the heading line
    end_line: int  # last non-blank line of the body
    body: str
    body_start: int  # line of the body's first line, to number pieces of a split section
    tags: tuple[str, ...] = ()  # the note's: its front matter's and its text's `#tags`
    question: bool = False  # its heading is one of the note's questions, for `similar`
    date: str = ""  # the note's front-matter date (ISO), "" when it has none

    @property
    def title(self) -> str:
        return self.headings[-1] if self.headings else ""


def split_sections(note: Note) -> list[Section]:
    """Sections whose body has any words, each under its path of headings, the note's title outermost; a table of
    contents is left out, and front matter gives the title, the tags and (its description) a first section.

    A note that asks questions in some headings is a Q&A note, and then all its section headings are its questions
    (Q&A headings are often elliptic: "배치사이즈"); in any other note no heading is a question.
    """
    lines = note.text.split("\n")
    found = outline(lines, is_markdown(note.path), markup_of(note.path), is_document(note.path))
    front = found.front
    asks = any(h.level > 0 and is_question(h.title) for h in found.headings.values())
    sections: list[Section] = []
    stack: list[tuple[int, str]] = [(-1, front.title)] if front.title else []
    heading_line: int | None = None  # None for text before the first heading
    page = ""  # a PDF's: each page ends a section's passage and names itself last in its heading path
    numbered = [(described(lines, front), front.description)] if front.description else []

    def close() -> None:
        kept = [(n, line) for n, line in numbered if line.strip()]
        if not any(ch.isalnum() for _, line in kept for ch in line):  # blank, or only a rule like "-----"
            return
        first, last = kept[0][0], kept[-1][0]
        body = "\n".join(line for n, line in numbered if first <= n <= last)
        headings = tuple(title for _, title in stack) + ((page,) if page else ())
        question = asks and heading_line is not None and stack[-1][0] > 0
        sections.append(
            Section(note.path, headings, heading_line or first, last, body, first, found.tags, question, front.date)
        )

    skip = 0
    for index in range(front.end, len(lines)):
        if skip:
            skip -= 1
            continue
        heading = found.headings.get(index)
        if index in found.pages:
            close()
            page, heading_line, numbered = f"p. {found.pages[index]}", None, []
            continue
        if heading is None:
            numbered.append((index + 1, "" if index in found.navigation else lines[index]))
            continue
        close()
        while stack and stack[-1][0] >= heading.level:
            stack.pop()
        stack.append((heading.level, heading.title))
        heading_line, skip = index + 1, heading.lines - 1
        numbered = [(index + 1, heading.rest)] if heading.rest else []
    close()
    return sections


def described(lines: list[str], front: FrontMatter) -> int:
    """The line a front-matter description is on, so a passage made of it points there."""
    return next((i + 1 for i in range(1, front.end) if lines[i].lstrip().startswith(("description", "summary"))), 1)


def split_sentences(text: str) -> list[str]:
    """Korean-aware sentence boundaries (Kiwi handles endings like 함/음 without a period).

    Kiwi reads at most SENTENCE_WINDOW characters at a time, since its time grows faster than its input (a line
    of 48 000 characters took 0.6 s, one of 193 000 took 6.6 s). Each window ends at a space, and its last
    sentence, which may go on past the window, is read again at the start of the next one. Text without a space
    for UNBROKEN characters is not prose (base64, a minified script, one syllable repeated, which Kiwi reads at
    20 ms per thousand characters): it is cut by characters instead.
    """
    sentences: list[str] = []
    start = 0
    while len(text) - start > SENTENCE_WINDOW:
        end = text.rfind(" ", start + 1, start + SENTENCE_WINDOW)
        found = kiwi().split_into_sents(text[start:end]) if end > start else []
        if len(found) > 1:
            sentences += [s.text for s in found[:-1]]
            start += found[-1].start
        else:  # one sentence fills the window, or there is no space in it: cut there
            end = end if end > start else start + SENTENCE_WINDOW
            sentences.append(text[start:end].strip())
            start = end
    rest = text[start:]
    if len(rest) >= UNBROKEN and len(rest.split(maxsplit=1)) == 1:
        return [*sentences, rest.strip()]
    return sentences + [s.text for s in kiwi().split_into_sents(rest)] or [text]


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
    whole = Chunk(
        section.path, section.headings, section.start_line, section.end_line, section.body, section.tags, section.date
    )
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
        chunks.append(Chunk(section.path, section.headings, start, group[-1].line, text, section.tags, section.date))
        group.clear()

    for piece in pieces_of(section, budget, count):
        if group and sum(p.tokens for p in group) + piece.tokens > budget:
            flush()
        group.append(piece)
    flush()
    return chunks


def parts_of(chunk: Chunk, row: int, settings: ChunkerSettings, count: TokenCounter) -> list[Part]:
    """The chunk (at row) cut into the pieces a question usually targets, each with where it lies in the chunk."""
    texts = part_texts(chunk, settings, count)
    return [Part(row, start, end) for start, end in locate(texts, chunk.text)]


def locate(pieces: list[str], text: str) -> list[tuple[int, int]]:
    """Character spans of pieces in text, in order. A piece is text with its whitespace re-spaced (wrapped lines
    joined, sentences split), so it is found by its non-space characters; a piece not found (never seen) spans the
    whole text rather than failing."""
    squeezed, where = [], []  # text without whitespace, and the index in text of each character kept
    for i, ch in enumerate(text):
        if not ch.isspace():
            squeezed.append(ch)
            where.append(i)
    haystack, cursor, spans = "".join(squeezed), 0, []
    for piece in pieces:
        needle = "".join(piece.split())
        found = haystack.find(needle, cursor) if needle else -1
        if found < 0:
            spans.append((0, len(text)))
            continue
        cursor = found + len(needle)
        spans.append((where[found], where[cursor - 1] + 1))
    return spans


def part_texts(chunk: Chunk, settings: ChunkerSettings, count: TokenCounter) -> list[str]:
    """The chunk cut into the pieces a question usually targets: each bullet with its continuation lines, and
    other text as runs of sentences (hard-wrapped lines joined first, since a visual line is no unit of meaning).
    """
    blocks: list[tuple[bool, list[str]]] = []  # (is a bullet, its lines)
    after_blank = True
    for line in chunk.text.split("\n"):
        if not line.strip():
            after_blank = True
            continue
        bullet = bool(BULLET.match(line))
        # plain text continues a paragraph, or a bullet it directly follows (a wrapped bullet)
        if blocks and not bullet and (not blocks[-1][0] or not after_blank):
            blocks[-1][1].append(line.strip())
        else:
            blocks.append((bullet, [line.strip()]))
        after_blank = False
    parts: list[str] = []
    for bullet, lines in blocks:
        text = " ".join(lines)
        if bullet and count(text) <= settings.part_tokens:
            parts.append(text)
            continue
        run: list[str] = []
        for sentence in split_sentences(text):
            if run and count(" ".join([*run, sentence])) > settings.part_tokens:
                parts.append(" ".join(run))
                run = []
            run.append(sentence)
        if run:
            parts.append(" ".join(run))
    return parts or [chunk.text]


def chunk_note(note: Note, settings: ChunkerSettings, count: TokenCounter) -> list[Chunk]:
    return [chunk for section in split_sections(note) for chunk in chunk_section(section, settings, count)]
