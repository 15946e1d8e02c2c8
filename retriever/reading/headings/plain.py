"""A plain-text note's headings where it has no `#` ones: a title line, numbered sections (a heading that wraps
onto a second line kept whole), FAQ questions, statute units and articles."""

from __future__ import annotations

import itertools
import re

from .faq import FAQ_QUESTION
from .lines import FINISHED, LIST_ITEM, MAX_TITLE_CHARS, SENTENCE_END, Heading, is_title_line
from .statutes import article_text, legal_headings

NUMBERED = re.compile(r"^ {0,3}(\d{1,3}(?:\.\d{1,3}){0,5})\.?\)?[ \t]+(\S.*)$")


def title_line(lines: list[str], start: int) -> int | None:
    """The first line, when it is short and set apart by a blank line from the text that follows it."""
    first = next((i for i in range(start, len(lines)) if lines[i].strip()), None)
    if first is None or not is_title_line(lines[first]) or first + 1 >= len(lines) or lines[first + 1].strip():
        return None
    return first if any(line.strip() for line in lines[first + 1 :]) else None


def plain_structure(lines: list[str], start: int, fenced: set[int], setext: dict[int, Heading]) -> dict[int, Heading]:
    """The headings of a note without `#` ones: statute units and articles, numbered sections, FAQ questions."""
    legal = legal_headings(lines, start, fenced)
    return plain_headings(lines, start, fenced | article_text(lines, legal), setext | legal) | legal


def plain_headings(lines: list[str], start: int, fenced: set[int], known: dict[int, Heading]) -> dict[int, Heading]:
    """Numbered sections and FAQ questions of a plain-text note, beside the headings known already (setext
    headings, statute units and articles).

    A line counts when it stands alone (a blank line or the top above it), what follows is text or a deeper
    section, and its number goes on from the last section's: consecutive numbered lines are a table of contents,
    and items spaced by blank lines or numbered afresh a list. Numbered headings count only when there are two or
    more, since the last item of a list spaced by blank lines looks like one.
    """
    body = [i for i in range(start, len(lines)) if lines[i].strip() and i not in fenced]
    following = dict(itertools.pairwise(body))

    def candidate(i: int) -> Heading | None:
        line = lines[i]
        if i in known or len(line.strip()) > MAX_TITLE_CHARS or (i > start and lines[i - 1].strip()):
            return None
        numbered, question = NUMBERED.match(line), FAQ_QUESTION.match(line)
        if numbered:
            level, title = numbered.group(1).count(".") + 1, line.strip()
        elif question:
            level, title = 9, question.group(1).strip()  # below any numbered section it sits in
        else:
            return None
        tail = continuation(lines, i, known)
        if tail is not None:
            return Heading(level, f"{title} {tail}", 2)
        return None if level < 9 and title.endswith(SENTENCE_END) else Heading(level, title)

    found: dict[int, Heading] = {}
    last: dict[tuple[str, ...], int] = {}  # the last section number seen under each parent number
    for i in body:
        heading = candidate(i)
        nxt = following.get(i + heading.lines - 1) if heading else None
        if heading is None or nxt is None:
            continue
        if nxt == i + 1 and (NUMBERED.match(lines[nxt]) or FAQ_QUESTION.match(lines[nxt])):
            continue  # a line of a table of contents or of a list
        after = candidate(nxt)
        if after is not None and after.level <= heading.level:
            continue  # an item of a list spaced by blank lines
        number = NUMBERED.match(lines[i])
        if number and heading.level < 9:
            *parent, value = number.group(1).split(".")
            if int(value) <= last.get(tuple(parent), 0):
                continue  # numbering restarts: an item of a list under a section, not the next section
            last[tuple(parent)] = int(value)
        found[i] = heading
    if sum(1 for h in found.values() if h.level < 9) < 2:
        found = {i: h for i, h in found.items() if h.level == 9}
    return found


def continuation(lines: list[str], i: int, known: dict[int, Heading]) -> str | None:
    """The second line of a heading that wraps: the heading line looks unfinished (no closing punctuation), and the
    line right below it is at most half as long, ends no sentence, starts no section or item, and has a blank
    line after it; a section's first line of text, when it follows its heading without a blank line, is longer or
    ends in a period.

    The two are joined with a space, in Korean too: text is wrapped where a space was, and a break inside a word
    cannot be told from one between words without a dictionary.
    """
    if i + 1 >= len(lines) or i + 1 in known or (i + 2 < len(lines) and lines[i + 2].strip()):
        return None
    head, tail = lines[i].strip(), lines[i + 1].strip()
    below = lines[i + 1]
    if not tail or head.endswith(FINISHED) or tail.endswith(SENTENCE_END) or 2 * len(tail) > len(head):
        return None
    return None if NUMBERED.match(below) or FAQ_QUESTION.match(below) or LIST_ITEM.match(below) else tail
