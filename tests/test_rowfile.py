from pathlib import Path

import numpy as np
import pytest

from retriever.index.rowfile import RowReader, RowWriter, gather


@pytest.mark.parametrize("rows", [0, 1, 7, 3000])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_streamed_file_loads_with_numpy_and_reads_back_by_range(tmp_path: Path, rows: int, dtype: type) -> None:
    data = np.random.default_rng(rows).standard_normal((rows, 384)).astype(dtype)
    writer = RowWriter(tmp_path / "m.npy", 384, dtype)
    for start in range(0, rows, 1000):
        writer.append(data[start : start + 1000])
    writer.close()
    assert np.array_equal(np.load(tmp_path / "m.npy", allow_pickle=False), data)
    reader = RowReader(tmp_path / "m.npy")
    assert (reader.rows, reader.dim, reader.dtype) == (rows, 384, np.dtype(dtype))
    assert np.array_equal(reader.read(rows // 3, rows // 2), data[rows // 3 : rows // 2])
    with pytest.raises(ValueError):
        reader.read(0, rows + 1)
    reader.close()


def test_gather_follows_pick_order_across_files(tmp_path: Path) -> None:
    arrays = {s: np.arange(40, dtype=np.float32).reshape(10, 4) + 100 * s for s in (0, 1)}
    readers = {}
    for source, array in arrays.items():
        np.save(tmp_path / f"{source}.npy", array)
        readers[source] = RowReader(tmp_path / f"{source}.npy")
    picks = [(1, 2, 3), (1, 3, 5), (0, 0, 2), (1, 9, 10), (0, 2, 3)]
    expected = np.concatenate([arrays[s][a:b] for s, a, b in picks])
    assert np.array_equal(gather(readers, picks, 4, np.float32), expected)
    assert gather(readers, [], 4, np.float32).shape == (0, 4)
