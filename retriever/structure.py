"""Where a note's structure is: front matter, headings in every common spelling, and navigation blocks.

Markdown headings (`#`) and setext headings (a line over `===` or `---`) are explicit. A note without `#` headings
may still be structured the way plain-text documents are: a title line, numbered sections (`12.5. 데비안에서 …`)
and FAQ questions (`Q. …`); those count as headings only there, so a numbered list in a Markdown note stays a list.
A table of contents repeats the note's own headings; it is navigation, not an answer, so it is never chunked.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import yaml

ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+$")
FENCE = re.compile(r"^[ \t]*(```|~~~)")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
NUMBERED = re.compile(r"^ {0,3}(\d{1,3}(?:\.\d{1,3}){0,5})\.?\)?[ \t]+(\S.*)$")
FAQ_QUESTION = re.compile(r"^ {0,3}(?:Q\d*|질문)[ \t]*[.:)][ \t]*(\S.*)$", re.IGNORECASE)
LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+•]|\d+[.)])[ \t]+")
TOC_DECORATION = re.compile(r"^[ \t]*(?:[-*+•][ \t]+)?(?:\d+(?:\.\d+)*\.?\)?[ \t]+)?|[ \t.·…_-]*\d*[ \t]*$")
LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")

MAX_TITLE_CHARS = 100
MAX_FRONTMATTER_LINES = 200  # front matter is a few keys; a longer block is a document, not metadata
TOC_MIN_LINES = 3


@dataclass(frozen=True)
class FrontMatter:
    title: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    end: int = 0  # index of the first line after it


@dataclass(frozen=True)
class Heading:
    level: int  # 0 is the document's title, above every section
    title: str
    lines: int = 1  # lines it spans (a setext heading has its underline)


@dataclass
class Outline:
    front: FrontMatter
    headings: dict[int, Heading] = field(default_factory=dict)  # by 0-based line index
    navigation: set[int] = field(default_factory=set)  # line indexes of table-of-contents blocks


def read_frontmatter(lines: list[str]) -> FrontMatter:
    """YAML between `---` lines at the very top. Anything that is not a small YAML mapping is left as text: a note
    may well open with a horizontal rule."""
    if not lines or lines[0].strip() != "---":
        return FrontMatter()
    end = next((i for i in range(1, min(len(lines), MAX_FRONTMATTER_LINES)) if lines[i].strip() in ("---", "...")), 0)
    if not end:
        return FrontMatter()
    try:
        data = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError:
        return FrontMatter()
    if not isinstance(data, dict):
        return FrontMatter()
    tags = data.get("tags", data.get("keywords", ()))
    if isinstance(tags, str):
        tags = [t for t in re.split(r"[,\s]+", tags) if t]
    return FrontMatter(
        title=one_line(data.get("title")),
        description=one_line(data.get("description", data.get("summary"))),
        tags=tuple(one_line(t) for t in tags if one_line(t)) if isinstance(tags, list) else (),
        end=end + 1,
    )


def one_line(value: object) -> str:
    return " ".join(str(value).split()) if isinstance(value, (str, int, float)) else ""


def atx(line: str) -> tuple[int, str] | None:
    match = ATX.match(line)
    if not match:
        return None
    return len(match.group(1)), CLOSING_HASHES.sub("", match.group(2) or "").strip()


def is_title_line(line: str) -> bool:
    """Short, with words, and no list item (a numbered section is recognised before this is asked)."""
    text = line.strip()
    return 0 < len(text) <= MAX_TITLE_CHARS and any(ch.isalnum() for ch in text) and not LIST_ITEM.match(line)


def outline(lines: list[str]) -> Outline:
    found = Outline(read_frontmatter(lines))
    start = found.front.end
    fenced = fenced_lines(lines, start)
    found.headings = markdown_headings(lines, start, fenced)
    if not any(h.lines == 1 for h in found.headings.values()):  # no `#` headings: plain-text structure may be there
        found.headings = plain_headings(lines, start, fenced, found.headings) | found.headings
        title = title_line(lines, start)
        if not found.front.title and title is not None and title not in found.headings:
            found.headings[title] = Heading(0, lines[title].strip())
    found.navigation = navigation_lines(lines, found.headings, fenced)
    return found


def title_line(lines: list[str], start: int) -> int | None:
    """The first line, when it is short and set apart by a blank line from the text that follows it."""
    first = next((i for i in range(start, len(lines)) if lines[i].strip()), None)
    if first is None or not is_title_line(lines[first]) or first + 1 >= len(lines) or lines[first + 1].strip():
        return None
    return first if any(line.strip() for line in lines[first + 1 :]) else None


def fenced_lines(lines: list[str], start: int) -> set[int]:
    fenced, inside = set(), False
    for i in range(start, len(lines)):
        if FENCE.match(lines[i]):
            inside = not inside
            fenced.add(i)
        elif inside:
            fenced.add(i)
    return fenced


def markdown_headings(lines: list[str], start: int, fenced: set[int]) -> dict[int, Heading]:
    """`#` headings and setext headings: a single-line paragraph over a line of `=` (level 1) or `-` (level 2)."""
    headings: dict[int, Heading] = {}
    for i in range(start, len(lines)):
        if i in fenced:
            continue
        found = atx(lines[i])
        if found:
            headings[i] = Heading(*found)
            continue
        underline = SETEXT.match(lines[i])
        if (
            underline
            and i > start
            and i - 1 not in fenced
            and i - 1 not in headings
            and is_title_line(lines[i - 1])
            and (i - 1 == start or not lines[i - 2].strip())
            and not atx(lines[i - 1])
        ):
            headings[i - 1] = Heading(1 if underline.group(1)[0] == "=" else 2, lines[i - 1].strip(), 2)
    return headings


def plain_headings(lines: list[str], start: int, fenced: set[int], setext: dict[int, Heading]) -> dict[int, Heading]:
    """Numbered sections and FAQ questions of a plain-text note.

    A line counts when it stands alone (a blank line or the top above it), what follows is text or a deeper
    section, and its number goes on from the last section's: consecutive numbered lines are a table of contents,
    and items spaced by blank lines or numbered afresh a list. Numbered headings count
    only when there are two or more, since the last item of a list spaced by blank lines looks like one.
    """
    body = [i for i in range(start, len(lines)) if lines[i].strip() and i not in fenced]
    following = dict(itertools.pairwise(body))

    def candidate(i: int) -> Heading | None:
        line = lines[i]
        if i in setext or len(line.strip()) > MAX_TITLE_CHARS or (i > start and lines[i - 1].strip()):
            return None
        numbered = NUMBERED.match(line)
        if numbered and not numbered.group(2).rstrip().endswith((".", ",", ";", ":")):
            return Heading(numbered.group(1).count(".") + 1, line.strip())
        question = FAQ_QUESTION.match(line)
        if question:
            return Heading(9, question.group(1).strip())  # below any numbered section it sits in
        return None

    found: dict[int, Heading] = {}
    last: dict[tuple[str, ...], int] = {}  # the last section number seen under each parent number
    for i in body:
        heading, nxt = candidate(i), following.get(i)
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


def navigation_lines(lines: list[str], headings: dict[int, Heading], fenced: set[int]) -> set[int]:
    """Blocks of at least three lines, most of which name one of the note's own headings: a table of contents."""
    titles = {key(h.title) for h in headings.values()}
    titles.discard("")
    navigation: set[int] = set()
    block: list[int] = []
    for i in [*range(len(lines)), len(lines)]:
        if i < len(lines) and lines[i].strip() and i not in headings and i not in fenced:
            block.append(i)
            continue
        named = sum(1 for j in block if key(lines[j]) in titles)
        if len(block) >= TOC_MIN_LINES and named >= 0.6 * len(block):
            navigation.update(block)
        block = []
    return navigation


def key(text: str) -> str:
    """A heading or a contents line reduced to its words: numbers, bullets, links, dot leaders and page numbers off."""
    text = LINK.sub(r"\1", text)
    text = TOC_DECORATION.sub("", text)
    return " ".join(re.sub(r"[^\w\s]", " ", text).lower().split())


ASKING_START = re.compile(
    r"^(?:how|what|why|when|where|who|whom|which|can|could|should|shall|is|are|do|does|did|will|would|may|must)\b",
    re.IGNORECASE,
)
ASKING_WORD = re.compile(r"어떻게|어떤|무엇|뭐|왜|언제|어디|누구|누가|어느|몇|얼마")
ASKING_END = ("나요", "까요", "니까", "는지", "은지", "인지", "는가", "은가", "인가", "을까", "할까", "죠", "지요")


def is_question(title: str) -> bool:
    """Whether a heading is phrased as a question, in English or Korean (which often asks without a "?")."""
    text = title.strip().rstrip(".!。 ")
    return text.endswith(("?", "？", *ASKING_END)) or bool(ASKING_START.match(text) or ASKING_WORD.search(text))
