"""Structure read from the shapes real folders come in: front matter, setext and numbered headings, contents."""

from retriever.chunking import split_sections
from retriever.notes import Note

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
