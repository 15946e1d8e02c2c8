"""A heading, and what every reader asks of a line: its trailing blanks cut (so that no pattern needs `[ \t]*$`
and each costs time linear in the line), a closing run of marks cut, a title's length and look."""

from __future__ import annotations

import re
from dataclasses import dataclass

LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+•]|\d+[.)])[ \t]+")
MAX_TITLE_CHARS = 100
SENTENCE_END = (".", ",", ";", ":")  # a line ending so is text, not a heading
FINISHED = (*SENTENCE_END, "?", "？", "!", ")", "]", "」", "』", '"', "'")  # a heading line that wraps ends in none


@dataclass(frozen=True)
class Heading:
    level: int  # 0 is the document's title, above every section
    title: str
    lines: int = 1  # lines it spans (a setext heading has its underline, a wrapped heading its second line)
    rest: str = ""  # what follows it on its line and is body text: `제1조 ①대한민국은 …` opens with its first paragraph


def trimmed(line: str) -> str:
    """A line without its trailing blanks, as every heading pattern reads it: so none needs to end in `[ \t]*$`."""
    return line.rstrip(" \t")


def unclosed(text: str, mark: str) -> str:
    """A title without the run of `mark` that closes it when blanks set that run apart (`Title ##`, `Title ==`);
    a title of marks alone is then empty."""
    body = text.rstrip(mark)
    if body == text or (body and body[-1] not in " \t"):
        return text
    return trimmed(body)


def is_title_line(line: str) -> bool:
    """Short, with words, and no list item (a numbered section is recognised before this is asked)."""
    text = line.strip()
    return 0 < len(text) <= MAX_TITLE_CHARS and any(ch.isalnum() for ch in text) and not LIST_ITEM.match(line)
