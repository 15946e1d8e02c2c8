"""Questions as headings: a FAQ's `Q. …` lines, and whether a heading asks (what makes a note a Q&A note)."""

from __future__ import annotations

import re

FAQ_QUESTION = re.compile(r"^ {0,3}(?:Q\d*|질문)[ \t]*[.:)][ \t]*(\S.*)$", re.IGNORECASE)
SECTION_NUMBER = re.compile(r"^\d+(?:\.\d+)*\.?\)?[ \t]+")
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
