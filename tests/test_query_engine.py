"""The numpy query engine against the sentence-transformers model the index is built with: same vectors, same
token vectors, so swapping one for the other changes no ranking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retriever.encoders import DEFAULT_MODEL, load_query_encoder
from retriever.encoders.bert_numpy import NumpyBertQueryEncoder

TEXTS = [
    "배치 사이즈는 어떻게 정하나요?",
    "What learning rate should I use for BERT?",
    "캐글 grandmaster가 되려면 GPU가 몇 개 필요해?",
    "x",
    "🙂 이모지, 混合 scripts and ＦＵＬＬＷＩＤＴＨ text " * 8,
    "정형 데이터 대회에서 피처 엔지니어링을 할 때 " * 60,  # past 512 tokens: truncated alike
]


@pytest.fixture
def engine(model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NumpyBertQueryEncoder]:
    monkeypatch.setenv("RETRIEVER_QUERY_ENGINE", "numpy")
    load_query_encoder.cache_clear()
    loaded = load_query_encoder(DEFAULT_MODEL, model_cache)
    assert isinstance(loaded, NumpyBertQueryEncoder)
    yield loaded
    load_query_encoder.cache_clear()


@pytest.mark.parametrize("role", ["query", "passage"])
def test_numpy_engine_agrees_with_sentence_transformers(
    engine: NumpyBertQueryEncoder, float32_encoder, encoder, role: str
) -> None:
    ours, our_tokens = engine.encode_with_tokens(TEXTS, role)
    theirs, their_tokens = float32_encoder.encode_with_tokens(TEXTS, role)
    assert engine.spec == encoder.spec  # the index's model record matches, so the index accepts these vectors
    assert np.einsum("ij,ij->i", ours, theirs).min() >= 0.9999
    for mine, reference in zip(our_tokens, their_tokens):
        assert mine.shape == reference.shape
        assert np.einsum("ij,ij->i", mine.astype(np.float32), reference.astype(np.float32)).min() >= 0.999
    assert [engine.count_tokens(t) for t in TEXTS] == [float32_encoder.count_tokens(t) for t in TEXTS]


def test_int8_passage_encoder_stays_within_cosine_099_of_float32(float32_encoder, encoder) -> None:
    """The build's int8 graph against the float32 weights, on real passages: the notes' chunks and parts."""
    from retriever.encoders.base import pieces_of
    from retriever.indexing.indexer import collect
    from retriever.reading.chunking import ChunkerSettings
    from retriever.reading.notes import scan_notes

    corpus = collect(scan_notes(Path(__file__).parent.parent / "notes"), ChunkerSettings(), encoder.count_tokens)
    items = corpus.items()
    texts = [item.text for item in items] + [piece for item in items for piece in pieces_of(item)] + TEXTS
    ours, our_tokens = encoder.encode_with_tokens(texts, "passage")
    theirs, their_tokens = float32_encoder.encode_with_tokens(texts, "passage")
    assert np.einsum("ij,ij->i", ours, theirs).min() >= 0.99
    assert all(mine.shape == reference.shape for mine, reference in zip(our_tokens, their_tokens))
    assert [encoder.count_tokens(t) for t in TEXTS] == [float32_encoder.count_tokens(t) for t in TEXTS]


def test_int8_passage_graph_is_fed_the_word_rows_torch_loads(float32_encoder, encoder) -> None:
    """The graph starts after the word-embedding lookup: its rows, read from a memory map of model.safetensors,
    are the float32 rows torch's embedding layer holds, for the first, the last and a text's own ids."""
    table = float32_encoder.model[0].auto_model.embeddings.word_embeddings.weight.detach().numpy()
    ids = [0, 1, 2, len(table) - 1, *encoder.tokenizer.encode("passage: " + TEXTS[2]).ids]
    assert encoder.words.shape == table.shape
    assert np.array_equal(encoder.words[ids].astype(np.float32), table[ids])


def test_onnx_engine_can_be_chosen(model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_query_encoder.cache_clear()
    monkeypatch.setenv("RETRIEVER_QUERY_ENGINE", "onnx")
    try:
        assert not isinstance(load_query_encoder(DEFAULT_MODEL, model_cache), NumpyBertQueryEncoder)
    finally:
        load_query_encoder.cache_clear()
