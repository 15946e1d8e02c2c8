"""Results as the terminal shows them: rich Text built piece by piece, each piece with its style.

Text from notes, paths and questions never passes through rich's markup parser: a note holding `[bold]`, `[/]` or a
highlight that runs across a line break (`배치\\n사이즈`) is shown as written, and cannot open, close or break a tag.
Control characters are spelt out (`\\x1b`), so a note cannot move the cursor, recolour the screen or retitle the
window.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from rich.text import Text

from ..progress import CONTROL
from ..search.results import Hit

MARK = "bold yellow"  # the question's words; without colour, bold alone
INDENT = "   "


def plain(text: object) -> str:
    """Text as it is printed: control characters spelt out, nothing else changed."""
    return str(text).translate(CONTROL)


def marked(text: str, spans: Sequence[tuple[int, int]]) -> Text:
    """The text with the question's words styled; spans are character offsets into text as the index holds it."""
    shown, at = Text(), 0
    for start, end in spans:
        shown.append(plain(text[at:start]))
        shown.append(plain(text[start:end]), MARK)
        at = end
    shown.append(plain(text[at:]))
    return shown


def located(hit: Hit) -> Text:
    """Where a passage is: its note and line, then its heading path."""
    headings = " > ".join(h for h in hit.headings if h) or hit.heading
    return Text.assemble((f"{plain(hit.path)}:{hit.start_line}", "cyan"), "  ", (plain(headings), "bold"))


def hit_lines(hit: Hit) -> Iterator[Text]:
    """One result: rank, score, place and tags; its text indented, line by line; each channel's share (--explain)."""
    head = Text.assemble((str(hit.rank), "bold"), "  ", (f"{hit.score:.3f}", "green"), "  ", located(hit))
    if hit.tags:
        head.append(f"  {plain(', '.join(hit.tags))}", "dim")
    yield head
    for line in marked(hit.text, hit.highlights).split("\n"):
        yield Text(INDENT) + line
    for channel, values in (hit.explain or {}).items():
        detail = "  ".join(f"{k} {v:+.3f}" for k, v in values.items())
        yield Text(f"{INDENT}{plain(channel)}: {detail}", "dim")
    yield Text()
