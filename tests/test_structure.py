"""Structure read from the shapes real folders come in: front matter, setext and numbered headings, contents."""

from retriever.reading.chunking import split_sections
from retriever.reading.headings.faq import is_question
from retriever.reading.headings.lines import Heading
from retriever.reading.notes import Note
from retriever.reading.structure import outline

FAQ = """데비안 FAQ

1. 소개
1.1. 데비안이란?
1.2. 누가 만드나요?

1. 소개

1.1. 데비안이란?

   데비안은 자유 소프트웨어로 이루어진
   운영체제입니다.

1.2. 누가 만드나요?

   전 세계의 자원봉사자들이
   만듭니다.

2. 설치

설치 방법은 다음과 같습니다.

1. 시디를 넣는다

2. 재부팅한다

설치가 끝났습니다.
"""

FRONT = """---
title: npm-cache
section: 1
description: Manipulates packages cache
tags: [cache, cli]
---

### Synopsis

npm cache clean

### Description

Used to add, list, or clean the npm cache folder.
"""

SETEXT = """Project
=======

Intro text of the project.

Install
-------

Run the installer.

Usage
-----

1. first step
2. second step
"""


def sections(text: str, path: str = "n.txt") -> list[tuple[tuple[str, ...], int, str, bool]]:
    return [(s.headings, s.start_line, s.body, s.question) for s in split_sections(Note(path, text))]


def test_numbered_plain_text_faq_has_title_sections_and_no_table_of_contents() -> None:
    found = sections(FAQ)
    assert [h for h, *_ in found] == [
        ("데비안 FAQ", "1. 소개", "1.1. 데비안이란?"),
        ("데비안 FAQ", "1. 소개", "1.2. 누가 만드나요?"),
        ("데비안 FAQ", "2. 설치"),
    ]
    assert all("1.2. 누가" not in body for _, _, body, _ in found)  # the contents block is not text of any section
    assert found[0][1] == 9 and found[0][2].split("\n")[0].strip() == "데비안은 자유 소프트웨어로 이루어진"
    # a list numbered afresh under a section stays in its text
    assert "1. 시디를 넣는다" in found[2][2] and "2. 재부팅한다" in found[2][2]
    assert all(question for *_, question in found)  # the note asks, so its sections are its questions


def test_front_matter_gives_title_tags_and_description_and_is_no_chunk() -> None:
    parsed = split_sections(Note("npm-cache.md", FRONT))
    assert [s.headings for s in parsed] == [("npm-cache",), ("npm-cache", "Synopsis"), ("npm-cache", "Description")]
    assert parsed[0].body == "Manipulates packages cache" and parsed[0].start_line == 4
    assert all(s.tags == ("cache", "cli") for s in parsed)
    assert not any("section: 1" in s.body for s in parsed)
    assert not any(s.question for s in parsed)  # documentation headings ask nothing


def test_setext_headings_are_headings() -> None:
    found = sections(SETEXT, "README.md")
    assert [h for h, *_ in found] == [("Project",), ("Project", "Install"), ("Project", "Usage")]
    assert found[2][2] == "1. first step\n2. second step"


def test_numbered_list_in_markdown_stays_a_list() -> None:
    text = "# Steps\n\n1. Open the box\n\nSome words.\n\n2. Close it\n\nMore words.\n"
    assert [h for h, *_ in sections(text, "n.md")] == [("Steps",)]


def test_bad_front_matter_is_kept_as_text() -> None:
    text = "---\n: [unclosed\n---\n\nBody line.\n"
    bodies = [body for _, _, body, _ in sections(text, "n.md")]
    assert any("[unclosed" in b for b in bodies) and any("Body line." in b for b in bodies)


def test_first_line_titles_a_plain_note_only_when_set_apart() -> None:
    assert sections("2024-05-01\n\n오늘은 비가 왔다.\n")[0][0] == ("2024-05-01",)
    wrapped = "오늘은 회사에서 긴 회의가 있었는데\n생각보다 일찍 끝났다.\n"
    assert sections(wrapped)[0][0] == ()


def test_faq_question_lines_are_questions() -> None:
    text = "Q. 비밀번호를 잊었어요\n\nA. 설정에서 재설정하세요.\n\nQ: 환불은 되나요?\n\nA. 7일 안에 됩니다.\n"
    found = sections(text)
    assert [h[-1] for h, *_ in found] == ["비밀번호를 잊었어요", "환불은 되나요?"]
    assert found[1][2] == "A. 7일 안에 됩니다."


STATUTE = """개인정보 보호법

제1편 총칙
제1장 총강
제1조(목적) 이 법은 개인정보의 처리에 관하여 정한다.
제2조 (정의) 이 법에서 사용하는 용어의 뜻은 다음과 같다.
1. "개인정보"란 살아 있는 개인에 관한 정보를 말한다.
  가. 성명, 주민등록번호
2. "처리"란 개인정보의 수집, 생성, 이용을 말한다.
제2장 보호위원회
제1절 구성
제1관 위원
제7조(위원회) ① 위원회를 둔다.
② 위원회는 위원 9명으로 구성한다.
제7조의2(보호위원회의 구성 등) 위원장은 국무총리가 제청한다.
제2편 벌칙
제70조(벌칙) 다음 각 호의 자는 10년 이하의 징역에 처한다.

부칙 <법률 제12345호, 2020. 1. 1.>
제1조(시행일) 이 법은 공포한 날부터 시행한다.
제2조(경과조치) 종전의 규정에 따른다.
"""

CONSTITUTION = """우리마을 자치규약

이 규약은 주민 모두의 합의로 정한다.

       제1장 총칙
  제1조 ①이 마을은 주민 모두의 것이다.
②마을의 일은 주민 총회가 정한다.
  제2조 ① 주민의 자격은 세칙으로 정한다.
  제3조 마을의 구역은 개울과 언덕 사이로 한다.
       제2장 주민의 권리와 의무
  제10조 모든 주민은 총회에서 발언할 수 있다.
  제11조 ① 모든 주민은 총회에서 평등하다.
다음 각 호의 사항은 총회가 정한다.
1. 회비에 관한 사항
2. 행사에 관한 사항

부      칙

제1조 이 규약은 2024년 3월 1일부터 시행한다.
"""

BILL = """마을회관법 일부개정법률안

제21조제3항 중 “30일”을 “60일”로 한다.

제9조 중 관리인의 임기를 2년에서 3년으로 고친다.

제40조의2를 다음과 같이 신설한다.

제40조의2(야간 개방) ① 관리인은 회관을 밤에도 열 수 있다.

부      칙

이 법은 공포한 날부터 시행한다.

신·구조문대비표

제21조(사용 신청) ① (생  략)

제21조(사용 신청) ① (현행과 같음)
"""


def test_statute_units_and_articles_nest_as_a_heading_tree() -> None:
    found = {h[-1]: (h, body) for h, _, body, _ in sections(STATUTE)}
    assert found["제1조(목적)"][0] == ("개인정보 보호법", "제1편 총칙", "제1장 총강", "제1조(목적)")
    assert found["제1조(목적)"][1] == "이 법은 개인정보의 처리에 관하여 정한다."  # the rest of its line is its text
    assert found["제2조(정의)"][0][-2] == "제1장 총강"  # `제2조 (정의)`, spaced
    path = ("개인정보 보호법", "제1편 총칙", "제2장 보호위원회", "제1절 구성", "제1관 위원")
    assert found["제7조(위원회)"][0] == (*path, "제7조(위원회)")
    assert found["제7조의2(보호위원회의 구성 등)"][0] == (*path, "제7조의2(보호위원회의 구성 등)")
    assert found["제70조(벌칙)"][0] == ("개인정보 보호법", "제2편 벌칙", "제70조(벌칙)")
    addendum = ("개인정보 보호법", "부칙 <법률 제12345호, 2020. 1. 1.>")
    assert found["제1조(시행일)"][0] == (*addendum, "제1조(시행일)")
    assert found["제2조(경과조치)"][0] == (*addendum, "제2조(경과조치)")
    # paragraphs and items stay the text of their article
    assert found["제2조(정의)"][1].split("\n")[1:] == [
        '1. "개인정보"란 살아 있는 개인에 관한 정보를 말한다.',
        "  가. 성명, 주민등록번호",
        '2. "처리"란 개인정보의 수집, 생성, 이용을 말한다.',
    ]
    assert found["제7조(위원회)"][1] == "① 위원회를 둔다.\n② 위원회는 위원 9명으로 구성한다."


def test_constitution_style_articles_keep_their_first_paragraph_as_text() -> None:
    found = sections(CONSTITUTION)
    assert [h[-1] for h, *_ in found] == ["우리마을 자치규약", "제1조", "제2조", "제3조", "제10조", "제11조", "제1조"]
    assert found[1][1:3] == (6, "①이 마을은 주민 모두의 것이다.\n②마을의 일은 주민 총회가 정한다.")
    assert found[3][0] == ("우리마을 자치규약", "제1장 총칙", "제3조")
    assert found[3][2] == "마을의 구역은 개울과 언덕 사이로 한다."  # no title: the whole rest is its text
    assert found[5][0] == ("우리마을 자치규약", "제2장 주민의 권리와 의무", "제11조")
    assert found[5][2].endswith("1. 회비에 관한 사항\n2. 행사에 관한 사항")  # items, not sections
    assert found[-1][0] == ("우리마을 자치규약", "부칙", "제1조")  # `부      칙`, its article numbered afresh under it


def test_article_references_in_a_bill_stay_text() -> None:
    found = sections(BILL)
    assert [h[1:] for h, *_ in found] == [
        (),
        ("제40조의2(야간 개방)",),
        ("부칙",),
        ("제21조(사용 신청)",),
        ("제21조(사용 신청)",),
    ]
    intro = found[0][2]
    assert "제21조제3항 중" in intro and "제9조 중" in intro and "제40조의2를 다음과" in intro
    # the comparison table after the addendum is the main text again, not part of the addendum
    assert found[2][2] == "이 법은 공포한 날부터 시행한다.\n\n신·구조문대비표"


def test_a_lone_article_line_makes_no_statute() -> None:
    text = "회의록\n\n제3조 개정안을 논의했다.\n\n다음 회의는 월요일이다.\n"
    assert [h for h, *_ in sections(text)] == [("회의록",)]


def test_items_of_an_article_spaced_by_blank_lines_stay_its_text() -> None:
    text = (
        "법\n\n제1조(목적) 목적을 정한다.\n\n제2조(심의) 다음 사항은 심의한다.\n\n1. 예산안\n\n2. 결산\n\n"
        "② 심의는 공개한다.\n\n제3조(의결) 다음 사항은 의결한다.\n\n1. 법률안\n\n2. 조약안\n\n3. 사면\n\n"
        "② 의결은 과반수로 한다.\n"
    )
    found = sections(text)
    assert [h[-1] for h, *_ in found] == ["제1조(목적)", "제2조(심의)", "제3조(의결)"]
    assert found[2][2].endswith("1. 법률안\n\n2. 조약안\n\n3. 사면\n\n② 의결은 과반수로 한다.")


SCRIPT_FAQ = """The Debian GNU/Linux FAQ

4.9. Where can I get the packages?

   From the mirrors.

4.10. How do I install a package I downloaded?

   Run this script:

     #!/bin/sh
     # install the package
     dpkg -i "$1"
   # line (and replace the name with yours)
     apt-get -f install

# The end of the script

4.11. Why did it fail

   A dependency was missing.
"""


def test_hash_lines_of_a_numbered_text_file_are_comments() -> None:
    found = sections(SCRIPT_FAQ, "debian-faq.txt")
    assert [h[-1] for h, *_ in found] == [
        "4.9. Where can I get the packages?",
        "4.10. How do I install a package I downloaded?",
        "4.11. Why did it fail",
    ]
    assert "   # line (and replace the name with yours)" in found[1][2] and "# The end of the script" in found[1][2]
    assert all(question for *_, question in found)  # `similar` sees the note asking


def test_hash_lines_head_markdown_but_not_in_indented_code() -> None:
    found = sections(SCRIPT_FAQ, "debian-faq.md")
    assert [h for h, *_ in found] == [(), ("The end of the script",)]
    assert "# line (and replace" in found[0][2]  # attached to the indented script: code, not a heading
    indented = "# Setup\n\nRun:\n\n    # not a heading\n    make\n  # nor this\n\n## Use\n\nText.\n"
    assert [h for h, *_ in sections(indented, "n.md")] == [("Setup",), ("Setup", "Use")]
    fenced = "# Setup\n\n```sh\n# not a heading\nmake\n```\n"
    assert [h for h, *_ in sections(fenced, "n.md")] == [("Setup",)]


def test_text_file_with_only_hash_headings_keeps_them() -> None:
    text = "# Groceries\n\nmilk\n\n## Monday\n\n1. eggs\n\n2. bread\n"
    assert [h for h, *_ in sections(text, "list.txt")] == [("Groceries",), ("Groceries", "Monday")]


WRAPPED = """데비안 FAQ

1. 소개
1.1. 데비안은 무엇인가
요?
1.2. 누가 만들고 관리하
   나요?
2. 버그

1. 소개

1.1. 데비안은 무엇인가요?

   운영체제입니다.

1.2. 누가 만들고 관리하나요?

   자원봉사자들이 만듭니다.

2. 버그

2.1. 데비안에서 버그를 어떻게 보고하
나요?

   reportbug를 쓰세요.
"""


def test_contents_entries_that_wrap_are_still_contents() -> None:
    found = sections(WRAPPED)
    assert [h[-1] for h, *_ in found] == [
        "1.1. 데비안은 무엇인가요?",
        "1.2. 누가 만들고 관리하나요?",
        "2.1. 데비안에서 버그를 어떻게 보고하 나요?",
    ]
    assert not any("요?" in body or "나요?" in body or "1. 소개" in body for _, _, body, _ in found)


def test_a_numbered_heading_that_wraps_is_one_heading() -> None:
    lines = WRAPPED.split("\n")
    wrapped = outline(lines, markdown=False).headings[lines.index("2.1. 데비안에서 버그를 어떻게 보고하")]
    assert wrapped == Heading(2, "2.1. 데비안에서 버그를 어떻게 보고하 나요?", 2)
    english = "FAQ\n\n1. Intro\n\nText.\n\n2. How do I report a bug in a package that I\ninstalled?\n\nUse reportbug.\n"
    found = sections(english)
    assert found[-1][0][-1] == "2. How do I report a bug in a package that I installed?"
    assert found[-1][2] == "Use reportbug." and found[-1][1] == 7


def test_a_line_right_below_a_heading_is_its_text_unless_it_ends_the_heading() -> None:
    sentence = "FAQ\n\n1. 설치\n설치 방법은 다음과 같습니다.\n\n2. 설정\n설정 파일을 고칩니다.\n"
    assert [(h[-1], body) for h, _, body, _ in sections(sentence)] == [
        ("1. 설치", "설치 방법은 다음과 같습니다."),
        ("2. 설정", "설정 파일을 고칩니다."),
    ]
    short = "Guide\n\n1. Requirements\nPython 3.11\n\n2. Install\nRun pip.\n"
    assert [h[-1] for h, *_ in sections(short)] == ["1. Requirements", "2. Install"]
    finished = "FAQ\n\n1. 데비안이란 무엇인가요?\n운영체제\n\n2. 누가 만드나요?\n사람들\n"
    assert [(h[-1], body) for h, _, body, _ in sections(finished)] == [
        ("1. 데비안이란 무엇인가요?", "운영체제"),
        ("2. 누가 만드나요?", "사람들"),
    ]


def test_a_numbered_question_asks_without_a_question_mark() -> None:
    assert is_question("4.10. How do I install a package")
    assert not is_question("4.10. Installing a package")
