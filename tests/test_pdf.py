"""PDFs read as a person reads them: sections from bookmarks or from type, each passage on its page, the pages'
furniture (running headers and footers, page numbers, contents pages) left out, and no tags from the text. PDFs
are written here with fpdf2."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from retriever.reading.chunking import split_sections
from retriever.reading.documents import read_document
from retriever.reading.notes import Note

KOREAN_FONT = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")  # Debian's fonts-nanum
UNICODE_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian's fonts-dejavu-core


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
        pdf.cell(
            0, 8, f"text on {text.split()[0]} that goes on to a second line, hyphen-", new_x="LMARGIN", new_y="NEXT"
        )
        pdf.cell(0, 8, f"ated at its end by {text.split()[-1]}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(280)
        pdf.cell(0, 8, str(number), align="C")
    text = read_document(".pdf", bytes(pdf.output()))
    assert "Contents" not in text and ". . ." not in text and "Networking" not in text
    assert "ACME" not in text
    assert not [line for line in text.split("\n") if line.strip().isdigit()]
    assert "The mirror list lives in sources.list." in text
    assert "hyphenated at its end by files." in text and "hyphen-" not in text


def test_contents_pages_whose_entries_wrap_and_short_lists_of_tables_are_left_out() -> None:
    """As the Debian FAQ and installation guide set them: a long question wraps, its page number on the next line,
    and a list of tables holds a chapter line and two entries above the page's roman number."""
    pdf = new_pdf()
    pdf.set_font("helvetica", size=10)
    pdf.add_page()
    pdf.cell(0, 6, "Contents", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 6, "1 Definitions and overview 1", new_x="LMARGIN", new_y="NEXT")
    for number, (first, second) in enumerate(
        [
            ("What is this FAQ?", ""),
            ("What is the difference between Debian and other distributions? Why", "should I choose Debian?"),
            ("How does the Debian project fit in or compare with the GNU", "project?"),
            ("Does Debian just do GNU/Linux?", ""),
            ("I am currently tracking testing. What will happen when a release", "is made?"),
        ],
        1,
    ):
        if second:
            pdf.cell(0, 6, f"1.{number} {first}", new_x="LMARGIN", new_y="NEXT")
        pdf.cell(0, 6, f"{second or f'1.{number} {first}'} " + ". " * 25 + str(number), new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(280)
    pdf.cell(0, 6, "iii", align="C")
    pdf.add_page()
    pdf.cell(0, 6, "List of Tables", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 6, "3 Before installing", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 6, "3.1 Hardware information " + ". " * 25 + "17", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 6, "3.2 Recommended minimum system requirements " + ". " * 20 + "19", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(280)
    pdf.cell(0, 6, "iv", align="C")
    pdf.add_page()
    pdf.cell(0, 6, "This document answers questions frequently asked about Debian.", new_x="LMARGIN", new_y="NEXT")
    text = read_document(".pdf", bytes(pdf.output()))
    assert [line for line in text.split("\n") if line.strip() and not line.startswith("<!-- p. ")] == [
        "This document answers questions frequently asked about Debian."
    ]


@pytest.mark.skipif(not (KOREAN_FONT.exists() and UNICODE_FONT.exists()), reason="needs fonts-nanum, fonts-dejavu")
def test_a_bookmark_heads_its_lines_when_the_page_wraps_it_or_sets_its_hyphens_quotes_or_label_apart() -> None:
    """The page writes `CD‑ROM` with a non-breaking hyphen and `’` where the bookmark has `-` and `'`, wraps a long
    question over three lines, and sets `부록 A` on a line above the title its bookmark names: each heading is the
    page's own lines, found once, not a copy put above them."""
    pdf = new_pdf()
    pdf.add_font("dejavu", fname=str(UNICODE_FONT))
    pdf.add_font("nanum", fname=str(KOREAN_FONT))
    pdf.set_font("dejavu", size=11)
    pdf.add_page()
    pdf.start_section("CD-ROM/DVD-ROM")
    pdf.cell(0, 8, "2.4.1 CD\u2011ROM/DVD\u2011ROM", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 8, "Most architectures install from optical discs on 64\u2011bit PCs.", new_x="LMARGIN", new_y="NEXT")
    pdf.start_section("Are there package upgrades in `stable'? Why should I choose Debian over some other one?")
    for line in [
        "2.5 Are there package upgrades",
        "in \u2018stable\u2019? Why should I choose",
        "Debian over some other one?",
    ]:
        pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 8, "Yes: point releases.", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("nanum", size=11)
    pdf.add_page()
    pdf.start_section("설치 방법")
    pdf.cell(0, 8, "부록 A", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 8, "설치 방법", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 8, "이 문서는 설치하는 방법을 설명합니다.", new_x="LMARGIN", new_y="NEXT")
    assert sections("guide.pdf", pdf) == [
        (("2.4.1 CD-ROM/DVD-ROM", "p. 1"), "Most architectures install from optical discs on 64-bit PCs."),
        (
            (
                "2.5 Are there package upgrades in \u2018stable\u2019? Why should I choose Debian over some other one?",
                "p. 1",
            ),
            "Yes: point releases.",
        ),
        (("부록 A 설치 방법", "p. 2"), "이 문서는 설치하는 방법을 설명합니다."),
    ]


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


@pytest.mark.skipif(not KOREAN_FONT.exists(), reason="needs fonts-nanum")
def test_korean_typeset_without_spaces_between_words_gets_them_back() -> None:
    """Some PDFs set Korean with no gap between words at all (debian-history's): no library can read words there,
    so they come from Kiwi's spacing; a document set with spaces keeps its text as it is."""
    prose = [
        "데비안 프로젝트는 자유 소프트웨어로 구성된 운영 체제를 만드는 자원 봉사 단체이다.",
        "처음에는 자유 소프트웨어 재단의 지원을 받았고 지금은 천 명이 넘는 개발자가 참여한다.",
    ]
    texts = {}
    for name, lines in [("run together", [line.replace(" ", "") for line in prose]), ("spaced", prose)]:
        pdf = new_pdf()
        pdf.add_font("nanum", fname=str(KOREAN_FONT))
        pdf.set_font("nanum", size=11)
        pdf.add_page()
        for line in lines:
            pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
        texts[name] = read_document(".pdf", bytes(pdf.output()))
    words = texts["run together"].split()
    assert {"데비안", "프로젝트는", "자유", "소프트웨어로", "개발자가", "참여한다."} <= set(words)
    assert texts["spaced"] == "<!-- p. 1 -->\n\n" + "\n".join(prose) + "\n"


def test_a_word_hyphenated_at_a_line_end_keeps_its_hyphen_where_the_document_writes_one() -> None:
    """`full-` / `upgrade` is `full-upgrade` in a document that writes `full-upgrade` elsewhere; `instal-` /
    `lation` is `installation`."""
    pdf = new_pdf()
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    for line in [
        "To move to the new release, upgrade the packages with apt full-",
        "upgrade, then reboot. The instal-",
        "lation keeps your files.",
        "Run aptitude full-upgrade again after the reboot.",
    ]:
        pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    text = read_document(".pdf", bytes(pdf.output()))
    assert "apt full-upgrade, then reboot. The installation" in text.replace("\n", " ")
