"""The USE encoder on the real model: its contract, and that it can match Korean notes in either language."""

from __future__ import annotations

import numpy as np
import pytest

from retriever.encoders.use import BATCH_SIZE, UseEncoder

PASSAGES = [
    "고양이가 소파 위에서 낮잠을 자고 있다.",
    "주식 시장이 오늘 크게 하락했다.",
    "내일 서울에는 비가 많이 올 예정이다.",
    "회의록은 회의가 끝난 직후에 정리하는 것이 좋다.",
]


@pytest.fixture(scope="module")
def use() -> UseEncoder:
    return UseEncoder()


def test_rows_are_unit_float32_of_the_spec_dim(use: UseEncoder) -> None:
    vectors = use.encode(PASSAGES, "passage")
    assert vectors.shape == (len(PASSAGES), use.spec.dim) == (4, 512)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert use.encode([], "query").shape == (0, 512)


def test_order_survives_batching(use: UseEncoder) -> None:
    # the numbers make every text distinct, so a swapped row would show
    texts = [f"{PASSAGES[i % 4]} {i * 7}번째 메모, {'아주 ' * (i % 5)}중요함" for i in range(BATCH_SIZE + 9)]
    sizes: list[int] = []
    together = use.encode(texts, "passage", sizes.append)
    alone = np.vstack([use.encode([t], "passage") for t in texts])
    assert sizes == [BATCH_SIZE, 9]
    cosines = together @ alone.T
    assert np.diag(cosines).min() >= 0.999
    assert (cosines - np.eye(len(texts)) * 2).max() < 0.999


@pytest.mark.parametrize(
    ("query", "expected"),
    [("고양이가 자고 있어요", 0), ("The stock market fell sharply today", 1)],
    ids=["korean", "english-to-korean"],
)
def test_query_finds_its_korean_passage(use: UseEncoder, query: str, expected: int) -> None:
    scores = use.encode(PASSAGES, "passage") @ use.encode([query], "query")[0]
    assert int(scores.argmax()) == expected


def test_count_tokens_grows_with_text(use: UseEncoder) -> None:
    short = use.count_tokens("고양이가 잔다")
    longer = use.count_tokens("고양이가 잔다. The cat is asleep on the sofa after a long day.")
    assert 0 < short < longer
    assert use.count_tokens("  \n") == 0


def test_cached_uncompressed_weights_embed_the_same(use: UseEncoder, tmp_path) -> None:
    cached = UseEncoder(tmp_path)
    (written,) = tmp_path.glob("use-*-weights/weights.npz")  # one copy, no partial ones left behind
    assert not list(tmp_path.glob("use-*-weights.tmp-*"))
    np.testing.assert_array_equal(cached.encode(PASSAGES, "passage"), use.encode(PASSAGES, "passage"))
    stamp = written.stat().st_mtime_ns
    UseEncoder(tmp_path)
    assert written.stat().st_mtime_ns == stamp  # written once, then only read
    written.write_bytes(written.read_bytes()[:1000])  # truncated: rebuilt from the package, not used
    again = UseEncoder(tmp_path)
    np.testing.assert_array_equal(again.encode(PASSAGES, "passage"), use.encode(PASSAGES, "passage"))
