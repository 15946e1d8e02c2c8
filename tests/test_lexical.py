"""The BM25 channel: Korean morphemes, not whitespace words, and a saved index that loads back the same, scored
as bm25s scores it by a question that imports neither bm25s nor scipy."""

from __future__ import annotations

import io
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import cli

from retriever.index.lexical import LexicalIndex, quiet_bm25s, stopwords, tokenize


def test_particles_and_endings_are_stripped_so_forms_meet() -> None:
    assert tokenize("배치사이즈는 어떻게 정하나요?")[:2] == ["배치", "사이즈"]
    assert "정하다" in tokenize("배치사이즈는 어떻게 정하나요?")
    assert "정하다" in tokenize("크기를 정하는 기준")
    assert tokenize("캐글에서") == tokenize("캐글은") == ["캐글"]


def test_english_inside_korean_is_lowercased_and_stopwords_dropped() -> None:
    tokens = tokenize("What learning rate for BERT? 텍스트면 bert에 warm-up scheduler")
    assert tokens.count("bert") == 2
    assert {"learning", "rate", "scheduler"} <= set(tokens)
    assert not {"what", "for"} & set(tokens)


def test_the_stopwords_are_bm25s_own_lists() -> None:
    """Read from bm25s's file without importing the package: the same lists as `bm25s.stopwords` holds."""
    from bm25s.stopwords import STOPWORDS_EN_PLUS, STOPWORDS_KOREAN

    assert stopwords() == frozenset(STOPWORDS_EN_PLUS) | frozenset(STOPWORDS_KOREAN)
    assert {"what", "무엇"} <= stopwords()


def test_scores_coverage_and_round_trip(tmp_path: Path) -> None:
    docs = ["배치사이즈 GPU가 허용한 크게", "텍스트면 bert에 lr=1e-4를 즐겨 씀", "캐글 노트북도 사용 가능"]
    keys = [f"k{i}" for i in range(len(docs))]
    index = LexicalIndex.build(docs, keys, {})
    scored = index.score("배치 사이즈는?")
    assert int(np.argmax(scored.scores)) == 0 and scored.coverage == 1.0
    assert index.score("bert 학습률").coverage == 0.5
    unknown = index.score("quantum chromodynamics")
    assert unknown.coverage == 0.0 and not unknown.scores.any()
    index.save(tmp_path / "bm25")
    again = LexicalIndex.load(tmp_path / "bm25")
    assert np.allclose(again.score("캐글 노트북").scores, index.score("캐글 노트북").scores)
    # a rebuild takes stored tokens instead of re-tokenising: here the stored ones say otherwise, and win
    known = LexicalIndex.known_tokens(tmp_path / "bm25", keys)
    assert all(Counter(known[key]) == Counter(tokenize(doc)) for key, doc in zip(keys, docs))  # as counted
    assert LexicalIndex.known_tokens(tmp_path / "bm25", keys[:1]) == {}  # another index's keys: nothing kept
    known["k2"] = tokenize("배치사이즈")
    rebuilt = LexicalIndex.build(docs, keys, known)
    assert rebuilt.score("배치사이즈").scores[2] > 0


def test_an_unbroken_run_is_one_token_and_the_words_around_it_stay_morphemes() -> None:
    """Such runs are kept from Kiwi (slow on them, and no morphemes inside); the prose around them is not."""
    blob = "가" * 300
    assert tokenize(f"배치 사이즈는 {blob} 정하나요") == ["배치", "사이즈", blob, "정하다"]


def test_building_prints_nothing_through_a_root_logging_handler() -> None:
    """A user's (or a library's) logging.basicConfig must not bring bm25s's progress lines onto stderr."""
    seen = io.StringIO()
    handler = logging.StreamHandler(seen)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        LexicalIndex.build(["배치 사이즈"], ["k"], {})
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert "bm25s" not in seen.getvalue() and "Building index" not in seen.getvalue()


def test_a_basic_config_run_while_the_graph_is_made_is_undone() -> None:
    from retriever.encoders.onnx_e5 import quiet_root_logger

    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    with quiet_root_logger():
        logging.basicConfig(level=logging.INFO)  # what onnxruntime's quantiser does on import
    assert (root.level, root.handlers) == before


QUESTIONS = [
    "캐글은 어떻게 시작하나요?",
    "캐글 대회 캐글 대회 캐글",  # repeated terms add their weights again
    "배치사이즈와 lr은 GPU에 맞춰 어떻게 정하나요?",
    "Which pre-trained BERT model and scheduler for text classification?",
    "kaggle notebook gpu gpu quantum chromodynamics",  # words no note holds are dropped, repeats kept
]


def test_scores_equal_bm25s_own_for_every_term_and_question(repo_build: Path) -> None:
    """The index's own files, read without bm25s, score exactly as bm25s's get_scores over the same files."""
    index = repo_build / "index"
    folder = index / (index / "CURRENT").read_text().strip() / "bm25"
    ours = LexicalIndex.load(folder)
    theirs = quiet_bm25s().BM25.load(str(folder), mmap=True, show_progress=False, allow_pickle=False)
    assert ours.vocab == theirs.vocab_dict
    for term in range(ours.postings.terms):
        assert np.array_equal(ours.scores_of([term], 1.0).scores, theirs.get_scores([term]).astype(np.float32))
    asked = [ours.term_ids(question) for question in QUESTIONS]
    assert any(len(ids) > len(set(ids)) for ids, _, _ in asked) and any(0 < cover < 1 for _, cover, _ in asked)
    for question, (ids, coverage, foreign) in zip(QUESTIONS, asked):
        scored = ours.score(question)
        assert ids and scored.scores.dtype == np.float32 and scored.scores.any()
        assert np.array_equal(scored.scores, theirs.get_scores(ids).astype(np.float32)), question
        assert (scored.coverage, scored.foreign) == (coverage, foreign)


def test_a_load_checks_the_matrix_against_its_own_files(tmp_path: Path) -> None:
    """Inside an index the checksums catch an altered file first; this is what a load itself refuses."""
    LexicalIndex.build(["배치사이즈 GPU가 허용한 크게", "텍스트면 bert"], ["a", "b"], {}).save(tmp_path / "bm25")
    pointers = tmp_path / "bm25" / "indptr.csc.index.npy"
    np.save(pointers, np.load(pointers)[:-1])
    with pytest.raises(ValueError, match="inconsistent"):
        LexicalIndex.load(tmp_path / "bm25")
    assert LexicalIndex.known_tokens(tmp_path / "bm25", ["a", "b"]) == {}
    pointers.unlink()
    with pytest.raises(FileNotFoundError):
        LexicalIndex.load(tmp_path / "bm25")


def test_a_cold_question_imports_neither_bm25s_nor_scipy(small: tuple[Path, Path]) -> None:
    """bm25s imports scipy.sparse, 0.3 CPU-s of a cold question: a question reads the BM25 files on its own. Nor
    does it import the build code (the indexer, the chunker and its note parsers, the model converter's
    sentencepiece, the model cache's lock) when its index is up to date."""
    notes, index = small
    done = cli(
        "ask", "배치사이즈는 어떻게 정하나요?", "--notes", str(notes), "--index", str(index),
        "--no-server", "--mode", "hybrid", "-k", "1", "--json",
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"path": "a.md"' in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert "retriever.index.lexical" in imported  # the check sees modules at all
    assert not {name for name in imported if name.split(".")[0] in ("bm25s", "scipy")}
    building = (
        "retriever.indexing",
        "retriever.reading.chunking",
        "retriever.reading.structure",
        "retriever.selfcheck",
    )
    assert not {name for name in imported if name.startswith(building)}
    assert not {name for name in imported if name.split(".")[0] in ("yaml", "sentencepiece", "filelock")}
