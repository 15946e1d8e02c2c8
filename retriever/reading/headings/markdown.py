"""Markdown's headings: `#` lines (ATX) and setext underlines, never inside code, fenced or indented."""

from __future__ import annotations

import re

from .lines import Heading, is_title_line, trimmed, unclosed

ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*))?$")
FENCE = re.compile(r"^[ \t]*(```|~~~)")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


def atx(line: str) -> tuple[int, str] | None:
    match = ATX.match(trimmed(line))
    if not match:
        return None
    return len(match.group(1)), unclosed(match.group(2) or "", "#").strip()


def fenced_lines(lines: list[str], start: int) -> set[int]:
    fenced, inside = set(), False
    for i in range(start, len(lines)):
        if FENCE.match(lines[i]):
            inside = not inside
            fenced.add(i)
        elif inside:
            fenced.add(i)
    return fenced


def indented_blocks(lines: list[str], start: int) -> set[int]:
    """Lines of indented code: a block opens with a line indented by four spaces or a tab after a blank line, and
    goes on through the indented lines attached to it, so a script's `   # comment` indented less than the code
    around it is no heading either. Only `#` lines ask: plain-text documents indent their prose and headings."""
    code: set[int] = set()
    inside, after_blank = False, True
    for i in range(start, len(lines)):
        line = lines[i]
        if not line.strip():
            after_blank = True
            continue
        deep = line.startswith(("    ", "\t"))
        inside = (deep and (after_blank or inside)) or (inside and not after_blank and line[0] in " \t")
        if inside:
            code.add(i)
        after_blank = False
    return code


def markdown_headings(lines: list[str], start: int, code: set[int]) -> dict[int, Heading]:
    """`#` headings and setext headings: a single-line paragraph over a line of `=` (level 1) or `-` (level 2)."""
    headings: dict[int, Heading] = {}
    for i in range(start, len(lines)):
        if i in code:
            continue
        found = atx(lines[i])
        if found:
            headings[i] = Heading(*found)
            continue
        underline = SETEXT.match(lines[i])
        if (
            underline
            and i > start
            and i - 1 not in code
            and i - 1 not in headings
            and is_title_line(lines[i - 1])
            and (i - 1 == start or not lines[i - 2].strip())
            and not atx(lines[i - 1])
        ):
            headings[i - 1] = Heading(1 if underline.group(1)[0] == "=" else 2, lines[i - 1].strip(), 2)
    return headings
