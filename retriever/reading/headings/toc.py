"""Tables of contents: a block of entries that name the note's own headings is navigation, not an answer, so it is
never chunked."""

from __future__ import annotations

import re

from .lines import Heading, trimmed

ENTRY_START = re.compile(r"^[ \t]*(?:[-*+•][ \t]|\d+(?:\.\d+)*\.?\)?[ \t]|\[)")
TOC_BULLET = re.compile(r"^[ \t]*(?:[-*+•][ \t]+)?(?:\d+(?:\.\d+)*\.?\)?[ \t]+)?")
TOC_LEADER = " \t.·…_-"  # dot leaders before a contents entry's page number
LINK = re.compile(r"\[([^\[\]]*)\]\([^()]*\)")  # each scan stops at the next bracket: linear in the line
TOC_MIN_ENTRIES = 3


def navigation_lines(lines: list[str], headings: dict[int, Heading], fenced: set[int]) -> set[int]:
    """Blocks of at least three entries, most of which name one of the note's own headings: a table of contents.

    A long entry wraps: in a block whose entries start with a number, a bullet or a link, a line that starts with
    none goes on the entry before it. Words are compared without their spaces, so an entry wrapped inside a word
    still names its heading.
    """
    titles = {key(h.title) for h in headings.values()}
    titles.discard("")
    spanned = {i + k for i, h in headings.items() for k in range(h.lines)}
    navigation: set[int] = set()
    block: list[int] = []
    for i in [*range(len(lines)), len(lines)]:
        if i < len(lines) and lines[i].strip() and i not in spanned and i not in fenced:
            block.append(i)
            continue
        entries = contents_entries(lines, block)
        named = sum(len(entry) for entry in entries if key(" ".join(lines[j] for j in entry)) in titles)
        if len(entries) >= TOC_MIN_ENTRIES and named >= 0.6 * len(block):
            navigation.update(block)
        block = []
    return navigation


def contents_entries(lines: list[str], block: list[int]) -> list[list[int]]:
    """A block's lines grouped into entries, a wrapped entry's lines together."""
    entries: list[list[int]] = []
    for i in block:
        if entries and not ENTRY_START.match(lines[i]) and ENTRY_START.match(lines[entries[-1][0]]):
            entries[-1].append(i)
        else:
            entries.append([i])
    return entries


def key(text: str) -> str:
    """A heading or a contents entry reduced to its words, without spaces: numbers, bullets, links, dot leaders and
    page numbers off."""
    text = LINK.sub(r"\1", text)
    text = undecorated(text)
    return "".join(re.sub(r"[^\w\s]", " ", text).lower().split())


def undecorated(text: str) -> str:
    """A contents entry without its bullet or number and its dot leaders and page number."""
    text = text[TOC_BULLET.match(text).end() :]  # type: ignore[union-attr] # it matches, if only nothing
    end = len(trimmed(text))
    while end and text[end - 1].isdecimal():  # `\d`: a pattern's `\d*$` tried each digit of a long run to its end
        end -= 1
    return text[:end].rstrip(TOC_LEADER)
