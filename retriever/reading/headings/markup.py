"""Org-mode (`* H`), reStructuredText (a title under- or over- and underlined by a punctuation character) and
AsciiDoc (`= Title`): each markup's heading spelling and setting lines, read by a note's suffix and only there."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from .lines import Heading, is_title_line, trimmed, unclosed

ORG_HEADING = re.compile(r"^(\*+)[ \t]+(.*)$")
ORG_TITLE = re.compile(r"^#\+title:[ \t]*(\S.*)$", re.IGNORECASE)
ORG_BLOCK = re.compile(r"^[ \t]*#\+(begin|end)_", re.IGNORECASE)
ORG_KEYWORDS = re.compile(r"^(?:(?:TODO|DONE)[ \t]+)?(?:\[#[A-Za-z0-9]\][ \t]+)?")
ORG_TAGS = re.compile(r":[\w@#%:]+:")
RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}[ \t]*$")  # one ASCII punctuation character, 3 or more times
ADOC_HEADING = re.compile(r"^(={1,6})[ \t]+(\S.*)$")
ADOC_DELIMITER = re.compile(r"^(-{4,}|\.{4,}|={4,}|\*{4,}|_{4,}|\+{4,}|/{4,}|`{3,})[ \t]*$")


def org_headings(lines: list[str], start: int) -> dict[int, Heading]:
    """`* H`, `** H`, … (a star per level; TODO keyword, priority and tags left out) and `#+TITLE:` as the title;
    never inside a `#+BEGIN_…` block."""
    found: dict[int, Heading] = {}
    inside = False
    for i in range(start, len(lines)):
        block = ORG_BLOCK.match(lines[i])
        if block:
            inside = block.group(1).lower() == "begin"
        elif not inside and (title := ORG_TITLE.match(trimmed(lines[i]))):
            found[i] = Heading(0, title.group(1))
        elif not inside and (match := ORG_HEADING.match(trimmed(lines[i]))):
            text = org_title(match.group(2))
            if text:
                found[i] = Heading(len(match.group(1)), text)
    return found


def org_title(text: str) -> str:
    """A heading's words without its TODO keyword, its priority and the `:tags:` it ends in."""
    text = text[ORG_KEYWORDS.match(text).end() :]  # type: ignore[union-attr] # it matches, if only nothing
    cut = max(text.rfind(" "), text.rfind("\t"))
    if cut >= 0 and ORG_TAGS.fullmatch(text, cut + 1):
        text = text[:cut]
    return text.strip()


def rst_headings(lines: list[str], start: int) -> dict[int, Heading]:
    """Section titles: a line under a line of one punctuation character (at least 3 of them), or between two
    such lines of the same character. As in reStructuredText, levels go by the order the styles first appear in
    (character, and whether it is overlined); literal blocks are indented and titles are not, so none is read in
    code."""
    found: dict[int, Heading] = {}
    styles: list[tuple[str, bool]] = []

    def level(style: tuple[str, bool]) -> int:
        if style not in styles:
            styles.append(style)
        return styles.index(style) + 1

    def alone(i: int) -> bool:
        return i == start or not lines[i - 1].strip()

    i = start
    while i + 1 < len(lines):
        over, text = RST_ADORNMENT.match(lines[i]), lines[i + 1]
        if over and alone(i) and i + 2 < len(lines) and is_title_line(text):
            under = RST_ADORNMENT.match(lines[i + 2])
            if under and under.group(1) == over.group(1):
                found[i] = Heading(level((over.group(1), True)), text.strip(), 3)
                i += 3
                continue
        under = RST_ADORNMENT.match(text)
        if under and alone(i) and is_title_line(lines[i]) and not lines[i][0].isspace() and not over:
            found[i] = Heading(level((under.group(1), False)), lines[i].strip(), 2)
            i += 2
            continue
        i += 1
    return found


def asciidoc_headings(lines: list[str], start: int) -> dict[int, Heading]:
    """`= Title` (the document's title, level 0), `== Section` (1) … `====== ` (5), outside delimited blocks
    (listings, literals, examples, sidebars, quotes, comments)."""
    found: dict[int, Heading] = {}
    closing = ""  # the delimiter that ends the block we are in
    for i in range(start, len(lines)):
        line = lines[i].rstrip()
        if closing:
            closing = "" if line == closing else closing
        elif ADOC_DELIMITER.match(line):
            closing = line
        elif match := ADOC_HEADING.match(line):
            found[i] = Heading(len(match.group(1)) - 1, unclosed(match.group(2), "=") or match.group(2))
    return found


@dataclass(frozen=True)
class Markup:
    """A light markup's spelling of headings, and of the lines that set a document up rather than say anything
    (`#+OPTIONS: toc:nil`, `:toc: left`, `.. _target:`): those are never chunked."""

    headings: Callable[[list[str], int], dict[int, Heading]]
    settings: re.Pattern[str]


ASCIIDOC = Markup(asciidoc_headings, re.compile(r"^:!?[\w-]+!?:(?:[ \t]|$)"))
MARKUPS: dict[str, Markup] = {
    ".org": Markup(org_headings, re.compile(r"^#\+\w+:")),
    ".rst": Markup(rst_headings, re.compile(r"^\.\. _[^:]*:(?:[ \t]|$)")),
    ".adoc": ASCIIDOC,
    ".asciidoc": ASCIIDOC,
}


def markup_of(path: str) -> Markup | None:
    """The heading reader of a note's markup, by its suffix; None for Markdown and plain text."""
    return MARKUPS.get(os.path.splitext(path)[1].lower())
