"""Where a note's structure is: front matter, headings in every common spelling, and navigation blocks.

Markdown headings (`#`) and setext headings (a line over `===` or `---`) are explicit, but a `#` line is a heading
only outside code (fenced, or an indented block) and, in a `.txt` note that is numbered, it is a shell comment of a
shown script. A note without `#` headings may still be structured the way plain-text documents are: a title line,
numbered sections (`12.5. 데비안에서 …`, a heading that wraps onto a second line kept whole), FAQ questions
(`Q. …`) and the units and articles of Korean statutes (`제1장 총강`, `제1조(목적)`, `부칙`); those count as headings
only there, so a numbered list in a Markdown note stays a list.
Org-mode (`* H`), reStructuredText (a title underlined, or over- and underlined, by a punctuation character) and
AsciiDoc (`= Title`, `== Section`) notes have their own heading spellings, read by their suffix and only there; a
document converted to Markdown (documents.py) is read as Markdown.
A table of contents repeats the note's own headings; it is navigation, not an answer, so it is never chunked.

Every pattern here costs time linear in its line, whatever the line: a line is matched with its trailing blanks
already cut off (`trimmed`), and no pattern lets two quantifiers over the same characters meet (`(.*?)[ \t]*$`
tried each end of a title against each run of blanks: a 20 KB heading line took 7 s, a megabyte one hours).
What a pattern cannot say so, a closing `##` or `==`, org tags, a contents entry's page number, is cut off in code.
"""

from __future__ import annotations

import datetime
import itertools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import yaml

from .documents import DOCUMENT_SUFFIXES

ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*))?$")
FENCE = re.compile(r"^[ \t]*(```|~~~)")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
NUMBERED = re.compile(r"^ {0,3}(\d{1,3}(?:\.\d{1,3}){0,5})\.?\)?[ \t]+(\S.*)$")
FAQ_QUESTION = re.compile(r"^ {0,3}(?:Q\d*|질문)[ \t]*[.:)][ \t]*(\S.*)$", re.IGNORECASE)
LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+•]|\d+[.)])[ \t]+")
SECTION_NUMBER = re.compile(r"^\d+(?:\.\d+)*\.?\)?[ \t]+")
ENTRY_START = re.compile(r"^[ \t]*(?:[-*+•][ \t]|\d+(?:\.\d+)*\.?\)?[ \t]|\[)")
TOC_BULLET = re.compile(r"^[ \t]*(?:[-*+•][ \t]+)?(?:\d+(?:\.\d+)*\.?\)?[ \t]+)?")
TOC_LEADER = " \t.·…_-"  # dot leaders before a contents entry's page number
LINK = re.compile(r"\[([^\[\]]*)\]\([^()]*\)")  # each scan stops at the next bracket: linear in the line
LEGAL_UNIT = re.compile(r"^\s*(제\s?\d+\s?([편장절관])(?:의\s?\d+)?)(?:[ \t]+(\S.*))?$")
ARTICLE = re.compile(r"^\s*(제\s?(\d+)\s?조(?:의\s?\d+)?)(?:[ \t]*(\([^()]{1,50}\)))?(?:[ \t]+(\S.*))?$")
INLINE_TAG = re.compile(r"(?<![\w#/&:.])#([\w/-]*[^\W\d_][\w/-]*)")
INLINE_CODE = re.compile(r"`[^`]*`")
PAGE_MARK = re.compile(r"^<!-- p\. (\d+) -->$")  # pdf.py's, opening each page
ADDENDUM = re.compile(r"(?:^|[ \t])부[ \t]*칙(?:[ \t]*(<[^<>]*>))?(?=[ \t]|$)")

MAX_TITLE_CHARS = 100
MAX_FRONTMATTER_LINES = 200  # front matter is a few keys; a longer block is a document, not metadata
TOC_MIN_ENTRIES = 3
MARKDOWN_SUFFIXES = (".md", ".markdown", *DOCUMENT_SUFFIXES)  # documents are converted to Markdown
SENTENCE_END = (".", ",", ";", ":")  # a line ending so is text, not a heading
FINISHED = (*SENTENCE_END, "?", "？", "!", ")", "]", "」", "』", '"', "'")  # a heading line that wraps ends in none
PARAGRAPH_MARKS = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"
LEGAL_LEVELS = {"편": 1, "장": 2, "절": 3, "관": 4}
ARTICLE_LEVEL = 5
ADDENDUM_LEVEL = 1  # 부칙 stands at the top, beside 편


@dataclass(frozen=True)
class FrontMatter:
    title: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    date: str = ""  # ISO date (YYYY-MM-DD) of its `date` key, "" when it has none that reads as a date
    end: int = 0  # index of the first line after it


@dataclass(frozen=True)
class Heading:
    level: int  # 0 is the document's title, above every section
    title: str
    lines: int = 1  # lines it spans (a setext heading has its underline, a wrapped heading its second line)
    rest: str = ""  # what follows it on its line and is body text: `제1조 ①대한민국은 …` opens with its first paragraph


@dataclass
class Outline:
    front: FrontMatter
    headings: dict[int, Heading] = field(default_factory=dict)  # by 0-based line index
    navigation: set[int] = field(default_factory=set)  # line indexes of table-of-contents blocks and markup settings
    tags: tuple[str, ...] = ()  # front matter's, then the text's own `#tags`
    pages: dict[int, int] = field(default_factory=dict)  # a converted PDF's page marks: line index → page number


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
        date=iso_date(data.get("date", data.get("created"))),
        end=end + 1,
    )


def iso_date(value: object) -> str:
    """YAML reads `date: 2024-03-01` as a date and `date: 2024-03-01 09:30` as a datetime; a quoted string is
    tried as ISO. Anything else is no date: the note is then dated by its file's modification time."""
    if isinstance(value, datetime.date):  # a datetime is a date too
        return value.isoformat()[:10]
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value.strip()[:10]).isoformat()
        except ValueError:
            return ""
    return ""


def inline_tags(lines: list[str], start: int, code: set[int]) -> tuple[str, ...]:
    """The `#tags` written in the text (Obsidian, Bear, Logseq), outside code: a `#` glued to a word that is not a
    number (`#3` is an issue or a list number) and not part of a URL or of another word (`C#`, `a/#b`)."""
    found: dict[str, None] = {}
    for i in range(start, len(lines)):
        if i not in code and "#" in lines[i]:
            for match in INLINE_TAG.finditer(INLINE_CODE.sub("", lines[i])):
                found.setdefault(match.group(1).rstrip("/"), None)
    return tuple(found)


def one_line(value: object) -> str:
    return " ".join(str(value).split()) if isinstance(value, (str, int, float)) else ""


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


def atx(line: str) -> tuple[int, str] | None:
    match = ATX.match(trimmed(line))
    if not match:
        return None
    return len(match.group(1)), unclosed(match.group(2) or "", "#").strip()


def article(line: str) -> re.Match[str] | None:
    return ARTICLE.match(trimmed(line))


def is_title_line(line: str) -> bool:
    """Short, with words, and no list item (a numbered section is recognised before this is asked)."""
    text = line.strip()
    return 0 < len(text) <= MAX_TITLE_CHARS and any(ch.isalnum() for ch in text) and not LIST_ITEM.match(line)


def is_document(path: str) -> bool:
    """Whether a note is a converted document (PDF, HTML, DOCX): its text is what a parser made of it."""
    return path.lower().endswith(tuple(DOCUMENT_SUFFIXES))


def is_markdown(path: str) -> bool:
    """Whether a note's name says Markdown; in any other note a `#` line may be a comment of a shown script."""
    return path.lower().endswith(MARKDOWN_SUFFIXES)


def outline(lines: list[str], markdown: bool = True, markup: Markup | None = None, document: bool = False) -> Outline:
    """The note's headings and navigation. `#` headings head a Markdown note; plain-text structure is read where
    there are none, and in a note that is not Markdown it also wins over `#` lines once it numbers sections or
    articles: there the `#` lines are comments of the scripts it shows. A markup's own headings (org, rst,
    AsciiDoc) head its note; one without any is read as plain text, never for `#` lines (an org comment).

    Tags are what a writer tagged: front matter's, and `#tags` in a note someone wrote as text. A converted
    document's text (`document`) never gives tags: in a PDF or a web page a `#` before a word is a colour code
    (`#FF00FF`), an anchor or a number sign. Its page marks (`<!-- p. N -->`, pdf.py) are recorded, not chunked."""
    found = Outline(read_frontmatter(lines))
    start = found.front.end
    fenced = fenced_lines(lines, start)
    code = fenced | indented_blocks(lines, start)
    found.tags = tuple(dict.fromkeys([*found.front.tags, *([] if document else inline_tags(lines, start, code))]))
    if document:
        found.pages = {i: int(m.group(1)) for i in range(start, len(lines)) if (m := PAGE_MARK.match(lines[i]))}
    settings = {i for i in range(start, len(lines)) if markup.settings.match(lines[i])} if markup else set()
    if markup is None:
        marked = markdown_headings(lines, start, code)
    elif marked := markup.headings(lines, start):
        found.headings = marked
        found.navigation = navigation_lines(lines, marked, fenced) | settings | set(found.pages)
        return found
    setext = {i: h for i, h in marked.items() if h.lines == 2}
    hashes = len(marked) > len(setext)
    plain = {} if hashes and markdown else plain_structure(lines, start, fenced, setext)
    if hashes and not any(h.level < 9 for h in plain.values()):
        found.headings = marked
    else:
        found.headings = plain | setext
        title = title_line(lines, start)
        if not found.front.title and title is not None and title not in found.headings:
            found.headings[title] = Heading(0, lines[title].strip())
    found.navigation = navigation_lines(lines, found.headings, fenced) | settings | set(found.pages)
    return found


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


def plain_structure(lines: list[str], start: int, fenced: set[int], setext: dict[int, Heading]) -> dict[int, Heading]:
    """The headings of a note without `#` ones: statute units and articles, numbered sections, FAQ questions."""
    legal = legal_headings(lines, start, fenced)
    return plain_headings(lines, start, fenced | article_text(lines, legal), setext | legal) | legal


def article_text(lines: list[str], legal: dict[int, Heading]) -> set[int]:
    """The lines of articles, up to the next unit or article: an article's items (1. 2. 가.) are its text."""
    text: set[int] = set()
    inside = False
    for i in range(min(legal, default=len(lines)), len(lines)):
        if i in legal:
            inside = bool(article(lines[i]))
        elif inside:
            text.add(i)
    return text


def legal_headings(lines: list[str], start: int, fenced: set[int]) -> dict[int, Heading]:
    """The units and articles of a Korean statute, nested 편 > 장 > 절 > 관 > 조, and its addenda (`부칙`).

    Units and articles stand at the start of a line, indented or not, blank lines around them or not (statutes
    are printed tight); `제63조제2항 중 …` and `제50조의3을 …` are references, never articles. An article keeps the
    rest of its line (`제1조 ①대한민국은 …`) as body, and its paragraphs and items (① 1. 가.) stay its text. An
    article written without a title (`제3조 대한민국의 영토는 …`, the constitution's style) counts only in a
    note where no article has one, since bills open amendment lines so (`제7조 중 …`).

    An addendum numbers its articles afresh from 제1조; an article that does not go on from them is the main text
    again (the comparison table a bill prints after its 부칙), and it and those after it stand at the top level.
    It takes two units or articles to make a statute of a note.
    """
    titled = any((m := article(lines[i])) and m.group(3) for i in range(start, len(lines)) if i not in fenced)
    found: dict[int, Heading] = {}
    parts = 0  # units and articles
    addendum: int | None = None  # the last article number read inside an addendum, 0 right after its heading
    article_level = ARTICLE_LEVEL
    for i in range(start, len(lines)):
        if i in fenced:
            continue
        addenda, unit, found_article = addendum_title(lines[i]), legal_unit(lines[i]), article(lines[i])
        if addenda is not None:
            found[i], addendum, article_level = Heading(ADDENDUM_LEVEL, addenda), 0, ARTICLE_LEVEL
        elif unit is not None:
            found[i], addendum, article_level, parts = unit, None, ARTICLE_LEVEL, parts + 1
        elif found_article and (not titled or is_article_start(found_article)):
            number = int(found_article.group(2))
            if addendum is not None and number not in (addendum, addendum + 1):
                addendum, article_level = None, ADDENDUM_LEVEL
            elif addendum is not None:
                addendum = number
            title = re.sub(r"\s", "", found_article.group(1)) + (found_article.group(3) or "")
            found[i], parts = Heading(article_level, title, rest=found_article.group(4) or ""), parts + 1
    return found if parts >= 2 else {}


def is_article_start(article: re.Match[str]) -> bool:
    """An article as every modern statute writes it: a title, or alone on its line, or straight into its first
    paragraph (`제1조 ①…`) or its deletion (`제5조 삭제 <2015. 1. 20.>`)."""
    rest = article.group(4) or ""
    return bool(article.group(3)) or not rest or rest[0] in PARAGRAPH_MARKS or rest.startswith("삭제")


def legal_unit(line: str) -> Heading | None:
    """`제1편 총칙`, `제2장 국회`, `제1절 대통령`, `제1관 …`: short, and no sentence (`제2장 중 …을 삭제한다.`)."""
    match = LEGAL_UNIT.match(trimmed(line))
    if not match or len(line.strip()) > MAX_TITLE_CHARS or (match.group(3) or "").endswith(SENTENCE_END):
        return None
    number = re.sub(r"\s", "", match.group(1))
    return Heading(LEGAL_LEVELS[match.group(2)], f"{number} {match.group(3)}" if match.group(3) else number)


def addendum_title(line: str) -> str | None:
    """`부칙` alone on its line (`부      칙` spaced out too), or with its promulgation note anywhere on a short line
    (`부칙 <법률 제12345호, 2020. 1. 1.>`): copies from the statute site keep its button labels around it."""
    match, text = ADDENDUM.search(line), line.strip()
    if not match or len(text) > MAX_TITLE_CHARS or (match.group(1) is None and text != match[0].strip()):
        return None
    return f"부칙 {match.group(1)}" if match.group(1) else "부칙"


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


ASKING_START = re.compile(
    r"^(?:how|what|why|when|where|who|whom|which|can|could|should|shall|is|are|do|does|did|will|would|may|must)\b",
    re.IGNORECASE,
)
ASKING_WORD = re.compile(r"어떻게|어떤|무엇|뭐|왜|언제|어디|누구|누가|어느|몇|얼마")
ASKING_END = ("나요", "까요", "니까", "는지", "은지", "인지", "는가", "은가", "인가", "을까", "할까", "죠", "지요")


def is_question(title: str) -> bool:
    """Whether a heading is phrased as a question, in English or Korean (which often asks without a "?")."""
    text = SECTION_NUMBER.sub("", title.strip()).rstrip(".!。 ")  # `4.10. How do I …` asks as `How do I …` does
    return text.endswith(("?", "？", *ASKING_END)) or bool(ASKING_START.match(text) or ASKING_WORD.search(text))
