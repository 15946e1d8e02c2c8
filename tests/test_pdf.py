"""PDFs read as a person reads them: sections from bookmarks or from type, each passage on its page, the pages'
furniture (running headers and footers, page numbers, contents pages) left out, words kept apart where the
glyphs leave gaps but the file has no spaces, and no tags from the text. PDFs are written here with fpdf2."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from retriever.chunking import split_sections
from retriever.documents import read_document
from retriever.notes import Note

KOREAN_FONT = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")  # Debian's fonts-nanum


def new_pdf() -> Any:
    from fpdf import FPDF

    logging.getLogger("fontTools").setLevel(logging.ERROR)
    pdf = FPDF()
    pdf.set_auto_page_break(False)
    return pdf


def sections(name: str, pdf: Any) -> list[tuple[tuple[str, ...], str]]:
    text = read_document(".pdf", bytes(pdf.output()))
    return [(s.headings, s.body) for s in split_sections(Note(name, text))]


def test_bookmarks_head_sections_and_every_passage_names_its_page() -> None:
    pdf = new_pdf()
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    pdf.start_section("1 Installing")
    pdf.cell(0, 8, "1 Installing", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 8, "Run the installer from the first disk.", new_x="LMARGIN", new_y="NEXT")
    pdf.start_section("Partitioning disks", level=1)  # the page writes its number, the bookmark does not
    pdf.cell(0, 8, "1.1 Partitioning disks", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 8, "Keep a separate partition for /home.", new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()
    pdf.cell(0, 8, "Swap should be as large as the memory.", new_x="LMARGIN", new_y="NEXT")
    assert sections("guide.pdf", pdf) == [
        (("1 Installing", "p. 1"), "Run the installer from the first disk."),
        (("1 Installing", "1.1 Partitioning disks", "p. 1"), "Keep a separate partition for /home."),
        (("1 Installing", "1.1 Partitioning disks", "p. 2"), "Swap should be as large as the memory."),
    ]


def test_without_bookmarks_a_line_set_larger_or_bolder_alone_is_a_heading() -> None:
    pdf = new_pdf()
    pdf.add_page()
    for size, style, text in [
        (20, "B", "Backup guide"),
        (11, "", "Backups run every night at three."),
        (11, "", "They are kept for thirty days, then removed."),
        (11, "B", "Restoring a backup"),
        (11, "", "Ask the on-call engineer to restore one; this line has a bold word in it too."),
    ]:
        pdf.set_font("helvetica", style=style, size=size)
        pdf.cell(0, 10, text, new_x="LMARGIN", new_y="NEXT")
    assert sections("backup.pdf", pdf) == [
        (("Backup guide", "p. 1"), "Backups run every night at three.\nThey are kept for thirty days, then removed."),
        (
            ("Backup guide", "Restoring a backup", "p. 1"),
            "Ask the on-call engineer to restore one; this line has a bold word in it too.",
        ),
    ]


def test_running_headers_page_numbers_and_contents_pages_are_left_out() -> None:
    pdf = new_pdf()
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    pdf.cell(0, 8, "Contents", new_x="LMARGIN", new_y="NEXT")
    for number, title in enumerate(["Installing", "Upgrading", "Removing", "Networking", "Printing"], 2):
        pdf.cell(0, 8, f"{number - 1} {title} " + ". " * 30 + str(number), new_x="LMARGIN", new_y="NEXT")
    body = ["The mirror list lives in sources.list.", "Upgrades keep your configuration files.", "Purge", "Printers"]
    for number, text in enumerate(body, 2):
        pdf.add_page()
        pdf.set_y(10)
        pdf.cell(0, 8, f"ACME Handbook - Chapter {number}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(40)
        pdf.cell(0, 8, text + " It says more here, at some length, to make a line of", new_x="LMARGIN", new_y="NEXT")
        pdf.cell(0, 8, f"text on {text.split()[0]} that goes on to a second line, hyphen-", new_x="LMARGIN", new_y="NEXT")
        pdf.cell(0, 8, f"ated at its end by {text.split()[-1]}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(280)
        pdf.cell(0, 8, str(number), align="C")
    text = read_document(".pdf", bytes(pdf.output()))
    assert "Contents" not in text and ". . ." not in text and "Networking" not in text
    assert "ACME" not in text
    assert not [line for line in text.split("\n") if line.strip().isdigit()]
    assert "The mirror list lives in sources.list." in text
    assert "hyphenated at its end by files." in text and "hyphen-" not in text


@pytest.mark.skipif(not KOREAN_FONT.exists(), reason="needs fonts-nanum")
def test_korean_words_set_apart_by_gaps_alone_stay_apart() -> None:
    """LaTeX places each word where it goes and writes no space between them."""
    pdf = new_pdf()
    pdf.add_font("nanum", fname=str(KOREAN_FONT))
    pdf.set_font("nanum", size=12)
    pdf.add_page()
    x = 20.0
    for word in ["배치", "사이즈는", "메모리가", "허용하는", "만큼", "크게", "잡는다."]:
        pdf.text(x, 30, word)
        x += pdf.get_string_width(word) + 3
    text = read_document(".pdf", bytes(pdf.output()))
    assert "배치 사이즈는 메모리가 허용하는 만큼 크게 잡는다." in text


def test_no_tags_from_the_text_of_a_pdf_or_a_web_page() -> None:
    pdf = new_pdf()
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    pdf.cell(0, 8, "Set the colour to #FF00FF, or as #AARRGGBB with alpha: #backup", new_x="LMARGIN", new_y="NEXT")
    text = read_document(".pdf", bytes(pdf.output()))
    html = read_document(".html", b"<html><body><p>Colour #FF00FF and #AARRGGBB, see #install</p></body></html>")
    assert [s.tags for s in split_sections(Note("colours.pdf", text))] == [()]
    assert [s.tags for s in split_sections(Note("colours.html", html))] == [()]
    # A note someone wrote keeps its own tags.
    assert split_sections(Note("colours.md", "Colour notes #design\n"))[0].tags == ("design",)
