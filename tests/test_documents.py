"""PDF, HTML, DOCX, org, rst and AsciiDoc notes: real files indexed by the real model, each answer found where a
person can open it (a page for PDF, a heading path for the rest); unreadable files skipped with one warning each;
and no parser imported by a question over an up-to-date index."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import cli

from retriever import Retriever
from retriever.indexing.indexer import IndexReport
from retriever.reading.chunking import split_sections
from retriever.reading.documents import read_document
from retriever.reading.notes import Note, scan_notes

KOREAN_FONT = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")  # Debian's fonts-nanum
PARSERS = ("pypdfium2", "selectolax", "docx", "dochan")

HTML = """<!doctype html><html><head><title>Deploy</title><style>p { color: red }</style></head><body>
<nav><a href="/">Home navigation menu</a></nav>
<h1>Deploy guide</h1><p>Every release ships as a container image.</p>
<script>trackVisitor("analytics")</script>
<h2>롤백 절차</h2><p>배포가 실패하면 <b>이전 이미지 태그</b>로 되돌린다.</p>
<ul><li>kubectl rollout undo 를 실행한다</li><li>대시보드에서 오류율을 확인한다</li></ul>
<pre>$ kubectl rollout undo deploy/web
# not a heading: a shell comment</pre>
<table><tr><th>환경</th><th>주소</th></tr><tr><td>staging</td><td>stage.example.com</td></tr></table>
</body></html>
"""

ORG = """#+TITLE: 서버 운영 노트
#+OPTIONS: toc:nil

* 백업
매일 새벽 3시에 데이터베이스 전체를 백업한다.
** TODO [#A] 복구 훈련 :ops:drill:
분기마다 한 번 백업에서 복구하는 훈련을 한다.
#+BEGIN_SRC sh
* not a heading inside a source block
#+END_SRC
* Monitoring
Disk alerts page the on-call engineer.
"""

RST = """==========
배포 가이드
==========

.. _install:

설치
====

pip 으로 설치한다::

    Not a title
    ===========

인증서 갱신
-----------

TLS certificates are renewed by certbot every sixty days.
"""

ADOC = """= 장애 대응 매뉴얼
:toc: left

== 연락망

장애가 나면 당직자에게 먼저 전화한다.

----
== not a heading inside a listing
----

=== Escalation

If nobody answers within thirty minutes, call the team lead.
"""


def write_pdf(path: Path, pages: list[str], password: str | None = None) -> None:
    from fpdf import FPDF

    logging.getLogger("fontTools").setLevel(logging.ERROR)  # subsetting notes about tables it drops
    pdf = FPDF()
    if KOREAN_FONT.exists():
        pdf.add_font("nanum", fname=str(KOREAN_FONT))
        pdf.set_font("nanum", size=12)
    else:
        pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    if password:
        pdf.set_encryption(owner_password=password, user_password=password)
    pdf.output(str(path))


def write_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("운영 안내서", 0)
    document.add_heading("백업 보관", 1)
    document.add_paragraph("백업 파일은 30일 동안 별도 스토리지에 보관한다.")
    document.add_paragraph("보관 기간이 지나면 자동으로 삭제된다", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for (row, col), text in {(0, 0): "서버", (0, 1): "역할", (1, 0): "db1", (1, 1): "주 데이터베이스"}.items():
        table.cell(row, col).text = text
    document.add_heading("Vendor contracts", 2)
    document.add_paragraph("The storage vendor contract is renewed every March by the finance team.")
    document.save(str(path))


def make_documents(folder: Path) -> Path:
    folder.mkdir()
    page_two = "The learning rate warm-up lasts 500 steps."
    if KOREAN_FONT.exists():
        page_two = "배치 사이즈는 GPU 메모리가 허용하는 만큼 크게 잡는다.\n" + page_two
    write_pdf(folder / "report.pdf", ["Release notes\n# of nodes: the cluster runs on three nodes.", page_two])
    write_docx(folder / "manual.docx")
    (folder / "page.html").write_text(HTML, encoding="utf-8")
    (folder / "ops.org").write_text(ORG, encoding="utf-8")
    (folder / "guide.rst").write_text(RST, encoding="utf-8")
    (folder / "incident.adoc").write_text(ADOC, encoding="utf-8")
    write_pdf(folder / "locked.pdf", ["secret plan"], password="hunter2")
    whole = (folder / "report.pdf").read_bytes()
    (folder / "broken.pdf").write_bytes(whole[: len(whole) // 3])
    (folder / "broken.docx").write_bytes((folder / "manual.docx").read_bytes()[:2000])
    return folder


@dataclass
class Indexed:
    notes: Path
    index: Path
    retriever: Retriever
    report: IndexReport


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[Indexed]:
    """One folder of every kind, indexed once for the module: each build loads the model."""
    root = tmp_path_factory.mktemp("documents")
    notes, index = make_documents(root / "notes"), root / "index"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RETRIEVER_CACHE_DIR", str(model_cache))
        patch.setenv("HF_HUB_OFFLINE", "1")
        retriever = Retriever(notes, index, models=["e5"])
        yield Indexed(notes, index, retriever, retriever.index())


def test_unreadable_files_are_skipped_with_a_reason_and_the_rest_indexed(indexed: Indexed) -> None:
    skipped = dict(indexed.report.skipped)
    assert len(indexed.report.skipped) == len(skipped) == 3  # one warning each
    assert skipped["locked.pdf"] == "an encrypted PDF (it needs a password)"
    assert skipped["broken.pdf"].startswith("a damaged PDF (")
    assert skipped["broken.docx"].startswith("a damaged DOCX (")
    assert indexed.report.notes == 6
    assert {c.path for c in indexed.retriever.manifest().chunks} == {
        "report.pdf",
        "manual.docx",
        "page.html",
        "ops.org",
        "guide.rst",
        "incident.adoc",
    }


ANSWERS = [
    # (question, note, heading path, a line the passage holds)
    ("How many nodes does the cluster run on?", "report.pdf", ("p. 1",), "three nodes"),  # a page, no headings
    ("How many steps does the learning rate warm-up last?", "report.pdf", ("p. 2",), "500 steps"),
    ("백업 파일은 며칠 동안 보관하나요?", "manual.docx", ("운영 안내서", "백업 보관"), "30일"),
    (
        "When is the storage vendor contract renewed?",
        "manual.docx",
        ("운영 안내서", "백업 보관", "Vendor contracts"),
        "March",
    ),
    ("배포가 실패하면 어떻게 되돌리나요?", "page.html", ("Deploy guide", "롤백 절차"), "이전 이미지 태그"),
    ("복구 훈련은 얼마나 자주 하나요?", "ops.org", ("서버 운영 노트", "백업", "복구 훈련"), "분기마다"),
    ("How often are TLS certificates renewed?", "guide.rst", ("배포 가이드", "설치", "인증서 갱신"), "sixty days"),
    ("장애가 나면 누구에게 먼저 연락하나요?", "incident.adoc", ("장애 대응 매뉴얼", "연락망"), "당직자"),
]
if KOREAN_FONT.exists():
    ANSWERS.append(("배치 사이즈는 얼마나 크게 잡나요?", "report.pdf", ("p. 2",), "배치 사이즈"))


@pytest.mark.parametrize(("question", "path", "headings", "words"), ANSWERS, ids=[a[0] for a in ANSWERS])
def test_an_answer_comes_back_where_a_person_can_open_it(
    indexed: Indexed, question: str, path: str, headings: tuple[str, ...], words: str
) -> None:
    hit = indexed.retriever.ask(question, k=1, mode="dense")[0]
    assert (hit.path, hit.headings) == (path, headings)
    assert words in hit.text
    # The line is a line of the text `get` gives for the note: its heading's line there, or a line on its page.
    lines = indexed.retriever.get(path)["text"].split("\n")
    if path.endswith(".pdf"):
        assert page_of(lines, hit.start_line) == headings[-1] and words in "\n".join(lines[hit.start_line - 1 :])
    else:
        assert headings[-1] in lines[hit.start_line - 1]


def page_of(lines: list[str], line: int) -> str:
    """The page a line of a PDF's text is on, as its heading path names it: the last page mark above it."""
    mark = next((text for text in reversed(lines[:line]) if text.startswith("<!-- p. ")), "no page mark")
    return mark.removeprefix("<!-- ").removesuffix(" -->")


def test_get_returns_the_text_the_index_saw(indexed: Indexed) -> None:
    scanned = {note.path: note.text for note in scan_notes(indexed.notes).notes}
    for path, text in scanned.items():
        assert indexed.retriever.get(path)["text"] == text
    pdf = scanned["report.pdf"].split("\n")
    assert pdf[0] == "<!-- p. 1 -->"
    assert "\\# of nodes: the cluster runs on three nodes." in pdf  # escaped: body text, no heading
    html = scanned["page.html"]
    assert "Home navigation" not in html and "trackVisitor" not in html and "color: red" not in html
    assert "- kubectl rollout undo 를 실행한다" in html and "환경 | 주소" in html
    assert "```\n$ kubectl rollout undo deploy/web\n# not a heading: a shell comment\n```" in html
    assert "서버 | 역할\ndb1 | 주 데이터베이스" in scanned["manual.docx"]
    assert "- 보관 기간이 지나면 자동으로 삭제된다" in scanned["manual.docx"]
    with pytest.raises(Exception, match="'locked.pdf' is an encrypted PDF"):
        indexed.retriever.get("locked.pdf")


def test_a_question_over_an_up_to_date_index_imports_no_parser(indexed: Indexed) -> None:
    done = cli(
        "ask", "복구 훈련은 얼마나 자주 하나요?", "--notes", str(indexed.notes), "--index", str(indexed.index),
        "--no-server", "--mode", "dense", "-k", "1", "--json",
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"path": "ops.org"' in done.stdout
    told = [line for line in done.stderr.splitlines() if not line.startswith("import time")]  # not module names
    assert not [line for line in told if "indexing" in line]  # up to date: nothing was read but bytes
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert "retriever.reading.documents" in imported  # the check sees modules at all
    assert not {name for name in imported if name.split(".")[0] in PARSERS}


def outline_of(path: str, text: str) -> list[tuple[tuple[str, ...], int]]:
    return [(s.headings, s.start_line) for s in split_sections(Note(path, text))]


def test_markup_headings_are_read_outside_code_and_only_in_their_own_notes() -> None:
    settings = ("toc:nil", "_install", ":toc:")  # lines that set the document up are in no passage
    for path, text in (("ops.org", ORG), ("guide.rst", RST), ("incident.adoc", ADOC)):
        assert not any(word in s.body for s in split_sections(Note(path, text)) for word in settings)
    assert outline_of("ops.org", ORG) == [
        (("서버 운영 노트", "백업"), 4),
        (("서버 운영 노트", "백업", "복구 훈련"), 6),
        (("서버 운영 노트", "Monitoring"), 11),
    ]
    assert outline_of("guide.rst", RST) == [(("배포 가이드", "설치"), 7), (("배포 가이드", "설치", "인증서 갱신"), 15)]
    assert outline_of("incident.adoc", ADOC) == [
        (("장애 대응 매뉴얼", "연락망"), 4),
        (("장애 대응 매뉴얼", "연락망", "Escalation"), 12),
    ]
    # The same lines in a Markdown note are no headings of those kinds.
    assert [h for h, _ in outline_of("ops.md", "* 백업\n본문\n\n== 연락망\n본문\n")] == [()]
    # An org note without headings is plain text: its `#` comments head nothing.
    assert outline_of("plain.org", "# a comment\n첫 문단.\n\n1. 첫째\n\n본문\n\n2. 둘째\n\n본문\n") == [
        ((), 1),
        (("1. 첫째",), 4),
        (("2. 둘째",), 8),
    ]


def test_html_in_a_declared_charset_and_a_pdf_without_text() -> None:
    page = '<html><head><meta charset="euc-kr"></head><body><h1>공지</h1><p>점검 안내</p></body></html>'
    assert read_document(".html", page.encode("euc-kr")) == "# 공지\n\n점검 안내\n"
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    with pytest.raises(Exception, match="a PDF without text"):
        read_document(".pdf", bytes(pdf.output()))


def test_a_missing_parser_skips_its_files_naming_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "selectolax.lexbor", None)  # as if the documents extra were not installed
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "page.html").write_text(HTML, encoding="utf-8")
    (notes / "note.md").write_text("# 제목\n본문\n", encoding="utf-8")
    scan = scan_notes(notes)
    assert [note.path for note in scan.notes] == ["note.md"]
    assert scan.skipped == [("page.html", "not read: reading it needs selectolax (pip install 'retriever[documents]')")]


def test_a_document_is_bounded_by_its_own_bytes_and_by_its_text(
    indexed: Indexed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retriever.reading import notes as notes_module

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "report.pdf").write_bytes((indexed.notes / "report.pdf").read_bytes())
    text = len(scan_notes(notes).notes[0].text.encode("utf-8"))
    size = (notes / "report.pdf").stat().st_size
    (notes / "dump.md").write_text("x" * (text + 1), encoding="utf-8")
    monkeypatch.setattr(notes_module, "MAX_NOTE_BYTES", text)  # far below the PDF's bytes, but its text fits
    scan = scan_notes(notes)
    assert size > text and [note.path for note in scan.notes] == ["report.pdf"]
    assert [(path, why.endswith("MB (RETRIEVER_MAX_NOTE_MB raises it)")) for path, why in scan.skipped] == [
        ("dump.md", True)
    ]
    monkeypatch.setattr(notes_module, "MAX_NOTE_BYTES", text - 1)
    assert scan_notes(notes).skipped[-1][1].endswith("MB of text (RETRIEVER_MAX_NOTE_MB raises it)")
    monkeypatch.setattr(notes_module, "MAX_DOCUMENT_BYTES", size - 1)
    assert scan_notes(notes).skipped[-1][1].endswith("MB (RETRIEVER_MAX_DOCUMENT_MB raises it)")


NAVIGATED = """<html><body>
<header><a href="index.html">Help home</a> <span>Search the manual</span></header>
<aside><p>Sidebar: every module of the suite</p></aside>
<div role="navigation"><a href="a.html">Previous chapter</a></div>
<div class="navheader"><table><tr><th>8장. 패키지 도구</th></tr></table></div>
<h1><a id="tools"></a>8장. 패키지 도구</h1>
<div class="toc"><p><strong>차례</strong></p><dl>
<dt><a href="tools.html#dpkg">8.1. dpkg는 무엇인가요?</a></dt>
<dt><a href="tools.html#apt">8.2. APT는 무엇인가요?</a></dt>
<dt><a href="#pin">8.3. 버전을 고정하려면?</a></dt></dl></div>
<article><header><p>Written by the packaging team</p></header>
<h2 id="dpkg">8.1. dpkg는 무엇인가요?</h2>
<p>dpkg는 <a href="#apt">APT</a>가 쓰는 낮은 수준의 패키지 관리 프로그램입니다.</p>
<h2 id="apt">8.2. APT는 무엇인가요?</h2><p>APT는 의존성을 풀어 패키지를 설치합니다.</p>
<h2 id="pin">8.3. 버전을 고정하려면?</h2><p>apt-mark hold 로 고정합니다.</p>
<aside><p>Note: pinning also works per release.</p></aside></article>
<div class="relatedtopics"><p>관련 주제</p><p><a href="x.html">APT 설정</a></p><p><a href="y.html">dpkg 로그</a></p></div>
<footer><h3>Help content debug info:</h3><p>This page is: /text/tools.xhp</p></footer>
</body></html>"""


def test_html_navigation_is_left_out_and_the_page_text_kept() -> None:
    text = read_document(".html", NAVIGATED.encode())
    for navigation in ("Help home", "Sidebar", "Previous chapter", "차례", "관련 주제", "APT 설정", "debug info"):
        assert navigation not in text
    assert text.count("8장. 패키지 도구") == 1 and text.count("8.2. APT는 무엇인가요?") == 1  # the heading only
    # Inside the article its header and aside are its own text; a link inside a sentence keeps the sentence.
    assert "Written by the packaging team" in text and "Note: pinning also works per release." in text
    assert "dpkg는 APT가 쓰는 낮은 수준의 패키지 관리 프로그램입니다." in text
    # A theme that titles the page in a header outside any article keeps the title.
    titled = (
        "<html><body><div class='post'><header><h1>Pump manual</h1></header><p>Read me first.</p></div></body></html>"
    )
    assert read_document(".html", titled.encode()) == "# Pump manual\n\nRead me first.\n"
    # A book's front page: its one-line abstract shares a block with the long contents list, and stays.
    entries = "".join(f'<dt><a href="ch{n}.html">{n}장. 데비안 패키지 관리 도구와 설정</a></dt>' for n in range(1, 9))
    front = f"<div class='book'><p>이 문서는 데비안에 관해 자주 묻는 질문에 답합니다.</p><dl>{entries}</dl></div>"
    assert read_document(".html", f"<html><body>{front}</body></html>".encode()) == (
        "이 문서는 데비안에 관해 자주 묻는 질문에 답합니다.\n"
    )


PUMP_PAGES = {
    "install": ("Installing the pump", "Bolt the pump to a level concrete base before connecting the pipes."),
    "priming": ("Priming", "Fill the casing with water through the priming plug until no air bubbles rise."),
    "seals": ("Shaft seals", "Replace the mechanical seal when water drips from the shaft more than once a minute."),
    "noise": ("Noise", "A rattling noise means cavitation: open the suction valve fully."),
    "winter": ("Winter storage", "Drain the pump and store it in a frost-free room over the winter."),
    "wiring": ("Wiring", "Connect the motor to a circuit protected by a 16 A breaker."),
}
FEEDBACK = "Was this page helpful?"
FEEDBACK_BOX = (
    f'<div class="feedback"><h2>{FEEDBACK}</h2><p>Tell us how to improve this manual: send feedback to the '
    "documentation team at docs@example.com.</p></div>"
)
FEEDBACK_QUESTION = "How do I send feedback to the documentation team?"


def pump_page(title: str, text: str, feedback: bool = True) -> str:
    return f"<html><body><h1>{title}</h1><p>{text}</p>{FEEDBACK_BOX if feedback else ''}</body></html>"


def test_a_section_repeated_on_most_pages_is_no_answer_and_comes_back_when_it_stops_repeating(
    tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRIEVER_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    notes = tmp_path / "notes"
    notes.mkdir()
    for name, (title, text) in PUMP_PAGES.items():
        (notes / f"{name}.html").write_text(pump_page(title, text), encoding="utf-8")
    (notes / "service.md").write_text(
        "# Service desk\n\n## Feedback about the pump\n\nSend feedback about the pump itself to the service desk "
        "by phone: 555-0100.\n",
        encoding="utf-8",
    )
    for n in range(5):  # a note copied five times is still an answer: only its copies hold it
        (notes / f"checklist {n}.md").write_text(
            "# Release checklist\n\nTag the release, then publish the wheel to the package index.\n", encoding="utf-8"
        )
    retriever = Retriever(notes, tmp_path / "index", models=["e5"])
    retriever.index()
    for mode in ("hybrid", "dense", "lexical"):
        hits = retriever.ask(FEEDBACK_QUESTION, k=5, mode=mode)
        assert hits and all(hit.headings[-1] != FEEDBACK for hit in hits), mode
        assert hits[0].path == "service.md"  # shares the question's words, and answers another question
    assert retriever.ask("How do I publish the wheel?", k=1)[0].path.startswith("checklist")
    assert retriever.ask("What do I do when the shaft drips water?", k=1)[0].path == "seals.html"
    # Two pages lose the box: four of six hold it, too few to call it boilerplate, and the next build answers it.
    for name in ("noise", "wiring"):
        (notes / f"{name}.html").write_text(pump_page(*PUMP_PAGES[name], feedback=False), encoding="utf-8")
    retriever.index()
    assert retriever.ask(FEEDBACK_QUESTION, k=1, mode="dense")[0].headings[-1] == FEEDBACK
