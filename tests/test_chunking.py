"""Sections and chunks: boundaries, line numbers and headings, on Korean Q&A notes."""

from __future__ import annotations

from retriever.reading.chunking import SENTENCE_WINDOW, ChunkerSettings, chunk_note, split_sections, split_sentences
from retriever.reading.notes import Note, normalise

QA = """## 배치사이즈
- GPU가 허용한 크게
- 전체 데이터의 10%를 넘지 않게

## 어떤 competition로 시작하면 좋을지?
- 많은 사람들이 참여한 대회를 추천

## """


def words(text: str) -> int:
    return len(text.split())


def test_each_question_with_its_bullets_is_one_chunk_and_empty_heading_gives_none() -> None:
    chunks = chunk_note(Note("qa.md", QA), ChunkerSettings(), words)
    assert [(c.heading, c.start_line, c.end_line) for c in chunks] == [
        ("배치사이즈", 1, 3),
        ("어떤 competition로 시작하면 좋을지?", 5, 6),
    ]
    assert chunks[0].text == "- GPU가 허용한 크게\n- 전체 데이터의 10%를 넘지 않게"
    assert chunks[0].embed_text.startswith("배치사이즈\n- GPU")


def test_heading_path_nests_and_text_before_first_heading_is_kept() -> None:
    text = "intro line\n# 캐글\n## 팀\n- 앙상블\n### 세부\n- 모델\n# 커리어\n- 집중\n"
    sections = split_sections(Note("n.md", text))
    assert [(s.headings, s.start_line, s.end_line) for s in sections] == [
        ((), 1, 1),
        (("캐글", "팀"), 3, 4),
        (("캐글", "팀", "세부"), 5, 6),
        (("커리어",), 7, 8),
    ]


def test_headings_inside_code_fences_and_rules_only_sections_are_not_structure() -> None:
    text = "-----\n## 코드\n```\n## not a heading\n```\n"
    sections = split_sections(Note("n.md", text))
    assert [s.headings for s in sections] == [("코드",)]
    assert "## not a heading" in sections[0].body


def test_crlf_and_bom_do_not_change_chunks() -> None:
    plain = chunk_note(Note("a.md", normalise(QA)), ChunkerSettings(), words)
    windows = chunk_note(Note("a.md", normalise("\ufeff" + QA.replace("\n", "\r\n"))), ChunkerSettings(), words)
    assert plain == windows


def test_long_section_splits_on_lines_then_sentences_within_the_budget() -> None:
    bullets = [f"- 항목 {i} 설명이 조금 길게 이어지는 문장입니다" for i in range(12)]
    long_line = "첫 문장은 여기서 끝남. 두 번째 문장도 꽤 길게 이어지고 있음. 세 번째는 마지막 문장임."
    text = "## 긴 질문\n" + "\n".join(bullets) + "\n" + long_line + "\n"
    settings = ChunkerSettings(max_tokens=20)
    chunks = chunk_note(Note("long.md", text), settings, words)
    assert len(chunks) > 3
    assert all(words(c.embed_text) <= settings.max_tokens for c in chunks)
    assert all(c.heading == "긴 질문" for c in chunks)
    # every word of the section survives, in order
    assert " ".join(" ".join(c.text.split()) for c in chunks) == " ".join(
        " ".join(text.split("\n", 1)[1].split()).split()
    )
    # line numbers are monotone and inside the section; the sentence split happened on line 14
    assert chunks[0].start_line == 1
    assert [c.start_line for c in chunks] == sorted(c.start_line for c in chunks)
    assert chunks[-1].end_line == 14
    assert chunks[-1].text.endswith("세 번째는 마지막 문장임.")


def test_word_longer_than_budget_is_cut_on_characters_never_inside_a_syllable() -> None:
    blob = "가" * 100
    chunks = chunk_note(Note("w.md", f"## 제목\n{blob}\n"), ChunkerSettings(max_tokens=12), len)
    assert "".join(c.text for c in chunks) == blob
    assert all(len(c.embed_text) <= 12 + 1 + len("제목") for c in chunks)


def test_real_tokenizer_budget_holds_for_korean(encoder) -> None:
    body = "\n".join(f"- 캐글 대회에서 앙상블과 외부 데이터를 활용하는 방법 {i}번째 설명입니다." for i in range(40))
    settings = ChunkerSettings(max_tokens=64)
    chunks = chunk_note(Note("k.md", "## 앙상블 팁\n" + body), settings, encoder.count_tokens)
    assert len(chunks) > 1
    assert all(encoder.count_tokens(c.embed_text) <= settings.max_tokens for c in chunks)


def test_a_long_line_is_split_into_the_same_sentences_window_by_window() -> None:
    """Kiwi reads a long line a window at a time; no sentence may be cut or lost where windows meet."""
    sentences = [f"{i}번째 문장은 배치 사이즈를 메모리가 허락하는 만큼 키운다는 설명임." for i in range(800)]
    line = " ".join(sentences)
    assert len(line) > 5 * SENTENCE_WINDOW
    assert split_sentences(line) == sentences


def test_a_long_line_without_spaces_is_cut_within_the_window_and_kept_whole() -> None:
    blob = "가나다라마바사아자차카타파하" * 2000
    pieces = split_sentences(blob)
    assert "".join(pieces) == blob and max(map(len, pieces)) <= SENTENCE_WINDOW
