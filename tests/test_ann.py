"""The ANN indexes on small clustered data with real FAISS: which kind the factory picks, what survives a save, how
close the approximate index stays to exact search, and that add/remove keep row numbers equal to matrix rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retriever.index.ann import FlatIndex, IVFIndex, Training, VectorIndex, build_index, load_index
from retriever.index.rowfile import RowReader
from retriever.index.vectorfile import VectorReader, VectorWriter

DIM = 64


def clustered(rows: int, seed: int) -> np.ndarray:
    """Unit rows around 40 centres that share a common direction, like embeddings (not uniform on the sphere)."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(DIM)
    centres = common + 0.8 * np.random.default_rng(0).standard_normal((40, DIM))
    x = centres[rng.integers(40, size=rows)] + 0.35 * rng.standard_normal((rows, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def reader(tmp_path: Path, matrix: np.ndarray, name: str = "m") -> RowReader:
    np.save(tmp_path / f"{name}.npy", matrix)
    return RowReader(tmp_path / f"{name}.npy")


def exact(matrix: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ matrix.T), axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def test_factory_picks_flat_below_the_threshold_and_ivf_above(tmp_path: Path) -> None:
    matrix = clustered(3000, 1)
    vectors = reader(tmp_path, matrix)
    assert build_index(vectors).kind == "flat-ip"
    assert build_index(vectors, threshold=3001).kind == "flat-ip"
    ivf = build_index(vectors, threshold=3000)
    assert ivf.kind == "ivf-sq" and len(ivf) == 3000
    assert ivf.params == {"nlist": 64, "nprobe": 64, "sq": "SQfp16"}  # no more lists than 3000 rows can train
    assert np.array_equal(ivf.search(matrix[::30], 1)[1][:, 0], np.arange(0, 3000, 30))  # each row finds itself


@pytest.mark.parametrize("threshold", [10**9, 0])
def test_kind_and_params_round_trip_through_save_and_load(tmp_path: Path, threshold: int) -> None:
    """Saved beside its matrix as an index stores it (int8 rows and their scales), which a flat index is built from."""
    writer = VectorWriter(tmp_path, "m", DIM)
    writer.append(clustered(2000, 2))
    writer.close()
    stored = VectorReader(tmp_path, "m")
    index = build_index(stored, threshold=threshold)
    stored.close()
    index.save(tmp_path / "m.faiss")
    loaded = load_index(index.kind, tmp_path / "m.faiss")
    assert (loaded.kind, loaded.params, len(loaded)) == (index.kind, index.params, 2000)
    queries = clustered(20, 3)
    assert np.array_equal(loaded.search(queries, 10)[1], index.search(queries, 10)[1])


def test_ivf_recall_at_10_against_exact_search(tmp_path: Path) -> None:
    matrix, queries = clustered(4000, 4), clustered(200, 5)
    index = IVFIndex.build(reader(tmp_path, matrix), nlist=64, nprobe=8)  # scans an eighth of the rows
    scores, rows = index.search(queries, 10)
    assert recall(rows, exact(matrix, queries, 10)) >= 0.9
    assert np.all(np.diff(scores, axis=1) <= 0)


def edit(matrix: np.ndarray, removed: np.ndarray, added: np.ndarray) -> np.ndarray:
    return np.concatenate([np.delete(matrix, removed, axis=0), added])


def edited_pair(tmp_path: Path, build) -> tuple[VectorIndex, VectorIndex, np.ndarray]:
    """An index edited by remove + add, a fresh one built from the edited matrix, and that matrix."""
    matrix = clustered(3000, 6)
    removed = np.random.default_rng(7).choice(3000, 300, replace=False)
    added = clustered(200, 8)
    index = build(reader(tmp_path, matrix, "before"))
    index.remove(removed)
    index.add(added)
    edited = edit(matrix, removed, added)
    return index, build(reader(tmp_path, edited, "after")), edited


def test_flat_add_and_remove_equal_a_fresh_index_of_the_edited_matrix(tmp_path: Path) -> None:
    index, fresh, edited = edited_pair(tmp_path, FlatIndex.build)
    queries = clustered(50, 9)
    assert len(index) == len(edited) == 2900
    scores, rows = index.search(queries, 10)
    assert np.array_equal(rows, fresh.search(queries, 10)[1])
    assert np.array_equal(rows, exact(edited, queries, 10))
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ edited.T, rows, 1), atol=1e-5)


def test_ivf_add_and_remove_keep_rows_equal_to_matrix_rows(tmp_path: Path) -> None:
    index, fresh, edited = edited_pair(tmp_path, lambda r: IVFIndex.build(r, nlist=32, nprobe=8))
    queries = clustered(50, 9)
    assert len(index) == len(edited) == 2900
    scores, rows = index.search(queries, 10)
    # each returned row scores as that row of the edited matrix does: renumbering after remove is exact
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ edited.T, rows, 1), atol=2e-3)
    assert recall(rows, fresh.search(queries, 10)[1]) >= 0.9
    assert recall(rows, exact(edited, queries, 10)) >= 0.9


@pytest.mark.parametrize("build", [FlatIndex.build, lambda r: IVFIndex.build(r, nlist=64, nprobe=1)])
def test_k_beyond_the_probed_lists_or_the_index_and_an_emptied_index(tmp_path: Path, build) -> None:
    index = build(reader(tmp_path, clustered(3000, 10)))
    queries = clustered(3, 11)
    scores, rows = index.search(queries, 500)  # one list of ~47 rows cannot hold 500: no -1 holes
    assert rows.shape == (3, 500) and (rows >= 0).all() and all(len(set(r)) == 500 for r in rows)
    assert index.search(queries, 5000)[1].shape == (3, 3000)
    with pytest.raises(ValueError):
        index.remove(np.array([3000]))
    index.remove(np.arange(3000))
    scores, rows = index.search(queries, 10)
    assert len(index) == 0 and scores.shape == rows.shape == (3, 0)
    index.add(clustered(5, 12))
    assert sorted(index.search(queries, 10)[1][0]) == [0, 1, 2, 3, 4]


def centroids(index: IVFIndex) -> np.ndarray:
    return index.index.quantizer.reconstruct_n(0, index.index.nlist)


def test_a_rebuild_keeps_trained_lists_while_few_rows_are_new(tmp_path: Path) -> None:
    matrix = clustered(3000, 13)
    first = build_index(reader(tmp_path, matrix, "first"), threshold=0)
    assert isinstance(first, IVFIndex) and first.record()["unseen"] == 0
    first.save(tmp_path / "first.faiss")
    nlist = first.index.nlist
    edited = edit(matrix, np.arange(100), clustered(150, 14))
    again = build_index(
        reader(tmp_path, edited, "again"), threshold=0, training=Training(tmp_path / "first.faiss", nlist, 150)
    )
    assert isinstance(again, IVFIndex) and again.params == first.params and again.record()["unseen"] == 150
    assert np.array_equal(centroids(again), centroids(first))  # no k-means: the same lists
    queries = clustered(100, 15)
    assert recall(again.search(queries, 10)[1], exact(edited, queries, 10)) >= 0.9
    # most rows unseen by the training, or a size that asks for another nlist: trained afresh
    for rows, unseen in ((3050, 1600), (12000, 0)):
        grown = clustered(rows, 16)
        training = Training(tmp_path / "first.faiss", nlist, unseen)
        other = build_index(reader(tmp_path, grown, f"g{rows}"), threshold=0, training=training)
        assert isinstance(other, IVFIndex) and other.record()["unseen"] == 0
        assert not np.array_equal(centroids(other)[: first.index.nlist], centroids(first))
