"""Korean statutes' structure: units (`제1장 총강`: 편, 장, 절, 관), articles (`제1조(목적)`) and addenda (`부칙`)."""

from __future__ import annotations

import re

from .lines import MAX_TITLE_CHARS, SENTENCE_END, Heading, trimmed

LEGAL_UNIT = re.compile(r"^\s*(제\s?\d+\s?([편장절관])(?:의\s?\d+)?)(?:[ \t]+(\S.*))?$")
ARTICLE = re.compile(r"^\s*(제\s?(\d+)\s?조(?:의\s?\d+)?)(?:[ \t]*(\([^()]{1,50}\)))?(?:[ \t]+(\S.*))?$")
ADDENDUM = re.compile(r"(?:^|[ \t])부[ \t]*칙(?:[ \t]*(<[^<>]*>))?(?=[ \t]|$)")
PARAGRAPH_MARKS = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"
LEGAL_LEVELS = {"편": 1, "장": 2, "절": 3, "관": 4}
ARTICLE_LEVEL = 5
ADDENDUM_LEVEL = 1  # 부칙 stands at the top, beside 편


def article(line: str) -> re.Match[str] | None:
    return ARTICLE.match(trimmed(line))


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
