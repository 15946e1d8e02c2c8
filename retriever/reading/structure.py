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
import re
from dataclasses import dataclass, field

import yaml

from .documents import DOCUMENT_SUFFIXES
from .headings.lines import Heading
from .headings.markdown import fenced_lines, indented_blocks, markdown_headings
from .headings.markup import Markup
from .headings.plain import plain_structure, title_line
from .headings.toc import navigation_lines

INLINE_TAG = re.compile(r"(?<![\w#/&:.])#([\w/-]*[^\W\d_][\w/-]*)")
INLINE_CODE = re.compile(r"`[^`]*`")
PAGE_MARK = re.compile(r"^<!-- p\. (\d+) -->$")  # pdf.py's, opening each page

MAX_FRONTMATTER_LINES = 200  # front matter is a few keys; a longer block is a document, not metadata
MARKDOWN_SUFFIXES = (".md", ".markdown", *DOCUMENT_SUFFIXES)  # documents are converted to Markdown


@dataclass(frozen=True)
class FrontMatter:
    title: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    date: str = ""  # ISO date (YYYY-MM-DD) of its `date` key, "" when it has none that reads as a date
    end: int = 0  # index of the first line after it


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
