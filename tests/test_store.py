"""The index on disk: what the manifest records, and how damaged or mismatched indexes are reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import rewrite_manifest, rewrite_table
from typer.testing import CliRunner

from retriever import Retriever, RetrieverError
from retriever.cli import app
from retriever.index import ann
from retriever.index.manifest import VERSION
from retriever.local.store import CURRENT
from retriever.reading.chunking import ChunkerSettings


@pytest.fixture
def built(repo_built: Path, tmp_path: Path) -> Retriever:
    return Retriever(repo_built, tmp_path / "index")


def generation(retriever: Retriever) -> Path:
    return retriever.store.root / (retriever.store.root / CURRENT).read_text().strip()


def edit_manifest(retriever: Retriever, change) -> None:
    rewrite_manifest(generation(retriever), change)


def cli_error(notes: Path, *extra: str) -> str:
    result = CliRunner().invoke(app, ["ask", "배치 사이즈", "--notes", str(notes), *extra])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    return line


def test_manifest_records_version_model_chunker_and_chunks_in_tables(built: Retriever) -> None:
    data = json.loads((generation(built) / "manifest.json").read_text(encoding="utf-8"))
    assert data["format"] == "retriever-index" and data["version"] == VERSION
    e5 = data["models"][0]
    assert e5["name"] == "intfloat/multilingual-e5-small"
    assert e5["dim"] == 384 and e5["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert data["chunker"] == {"max_tokens": 256, "part_tokens": 64, "version": ChunkerSettings().version}
    assert data["ann"]["m0.chunks"] == {"kind": "flat-ip"}
    assert set(data["files"]) == {"kaggle.md", "career.md"}
    assert "chunks" not in data and set(data["strings"]["paths"]) == {"kaggle.md", "career.md"}  # rows: in tables
    assert {"meta.chunks.npy", "meta.chunks.text.npy", "meta.parts.npy", "m0.parts.scale.npy"} <= set(data["checksums"])
    manifest = built.store.read_manifest()
    assert len(manifest.chunks) == 16 and len(manifest.chunk_question) == 16
    assert len(manifest.parts) > 16 and {p.chunk for p in manifest.parts} == set(range(16))
    notes = {path: (built.store.notes / path).read_text(encoding="utf-8") for path in data["files"]}
    for chunk in manifest.chunks:  # every chunk's text read back as its note has it
        assert chunk.text.strip() and chunk.text.strip().split("\n")[0] in notes[chunk.path], chunk
    assert manifest.chunks[-1] == manifest.chunks[15] and manifest.chunks[:2] == list(manifest.chunks)[:2]


def test_vectors_are_int8_with_a_scale_per_row_close_to_a_fresh_embedding(built: Retriever) -> None:
    loaded = built.store.load()
    codes, scales = loaded.vectors["m0.chunks"]
    assert codes.dtype == np.int8 and scales.shape == (16,) and (np.abs(codes).max(axis=1) == 127).all()
    encoder = built.encoders(built.index_models())[0]
    fresh = encoder.encode([c.embed_text for c in loaded.manifest.chunks], "passage")
    stored = loaded.stored("m0.chunks", slice(None))
    cosines = (stored * fresh).sum(axis=1) / np.linalg.norm(stored, axis=1) / np.linalg.norm(fresh, axis=1)
    assert cosines.min() > 0.999


def test_rebuilds_keep_two_generations_and_no_temp_folders(built: Retriever) -> None:
    (built.store.root / ".tmp-gen-interrupted").mkdir()  # left behind by a killed build
    for _ in range(3):
        built.index(full=True)
    names = sorted(p.name for p in built.store.root.iterdir() if not p.name.startswith(".build"))
    assert len([n for n in names if n.startswith("gen-")]) == 2
    assert not [n for n in names if n.startswith((".tmp", f".{CURRENT}"))]


def test_model_mismatch_names_the_fix(built: Retriever, repo_built: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-model"
    other.mkdir()
    line = cli_error(repo_built, "--model", str(other))
    assert "was built with model 'intfloat/multilingual-e5-small'" in line
    assert f"retriever index --full --notes {repo_built} --index index --encoders {other}" in line


def test_corrupt_manifest_is_reported_and_index_full_repairs_it(built: Retriever, repo_built: Path) -> None:
    (generation(built) / "manifest.json").write_text("{not json", encoding="utf-8")
    assert "retriever index --full" in cli_error(repo_built)
    repaired = CliRunner().invoke(app, ["index", "--full", "--notes", str(repo_built)])
    assert repaired.exit_code == 0, repaired.output
    assert built.ask("배치 사이즈", k=1)[0].heading == "배치사이즈"


def test_large_matrices_get_an_ivf_index_recorded_in_the_manifest(
    built: Retriever, repo_built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ann, "THRESHOLD", 20)  # 46 parts pass it, 16 chunks do not
    built.index(full=True)
    manifest = built.store.read_manifest()
    assert manifest.ann["m0.chunks"] == {"kind": "flat-ip"}
    parts = manifest.ann["m0.parts"]
    assert parts["kind"] == "ivf-sq" and parts["nprobe"] >= 1 and parts["nlist"] >= 1
    loaded = built.store.load()
    assert loaded.ann["m0.parts"].kind == "ivf-sq" and len(loaded.ann["m0.parts"]) == len(manifest.parts)
    assert built.ask("배치 사이즈는?", k=1)[0].heading == "배치사이즈"


def test_a_re_index_keeps_the_ivf_lists_and_full_trains_them_again(
    built: Retriever, repo_built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ann, "THRESHOLD", 20)
    built.index(full=True)

    def lists() -> np.ndarray:
        index = built.store.load().ann["m0.parts"].index  # held: the quantizer belongs to it
        return index.quantizer.reconstruct_n(0, index.nlist)

    trained = lists()
    note = repo_built / "kaggle.md"
    note.write_text(note.read_text(encoding="utf-8") + "\n## 검증 세트\n- 시간 순서로 나눈다\n", encoding="utf-8")
    built.index()
    record = built.store.read_manifest().ann["m0.parts"]
    assert record["kind"] == "ivf-sq" and record["unseen"] == 1  # the one new part
    assert np.array_equal(lists(), trained)
    assert built.ask("검증 세트는 어떻게 나눠요?", k=1)[0].heading == "검증 세트"
    built.index(full=True)
    assert built.store.read_manifest().ann["m0.parts"]["unseen"] == 0


def test_an_older_format_is_rebuilt_by_the_next_question(built: Retriever, repo_built: Path) -> None:
    edit_manifest(built, lambda d: d.update(version=VERSION - 1))
    with pytest.raises(RetrieverError, match="older than this retriever"):
        built.store.load()
    result = CliRunner().invoke(app, ["ask", "배치 사이즈", "--notes", str(repo_built), "-k", "1"])
    assert result.exit_code == 0, result.output
    assert "the index format changed" in result.stderr and "배치사이즈" in result.stdout


def test_newer_format_version_is_refused(built: Retriever, repo_built: Path) -> None:
    edit_manifest(built, lambda d: d.update(version=VERSION + 1))
    assert "newer than this retriever reads" in cli_error(repo_built)


@pytest.mark.parametrize(
    "file",
    [
        "m0.chunks.npy",
        "m0.parts.npy",
        "m0.parts.scale.npy",
        "m0.questions.npy",
        "meta.chunks.npy",
        "meta.chunks.text.npy",
        "meta.parts.npy",
        "bm25/vocab.index.json",
        "bm25/params.index.json",
        "bm25/indptr.csc.index.npy",
    ],
)
def test_truncated_or_missing_data_files_are_reported(built: Retriever, repo_built: Path, file: str) -> None:
    path = generation(built) / file
    path.write_bytes(path.read_bytes()[:100])
    assert "missing or altered" in cli_error(repo_built)
    path.unlink()
    assert "missing or altered" in cli_error(repo_built)


def test_a_bm25_matrix_sealed_inconsistent_is_reported(built: Retriever, repo_built: Path) -> None:
    """A question reads bm25s's files itself (index/lexical.py): pointers past the matrix are refused on load."""
    rewrite_table(generation(built), "bm25/indptr.csc.index.npy", lambda pointers: pointers + 1)
    error = cli_error(repo_built)
    assert "could not be read" in error and "BM25 matrix" in error and "retriever index --full" in error


def test_dimension_mismatch_is_reported(built: Retriever) -> None:
    edit_manifest(built, lambda d: d["models"][0].update(dim=512))
    with pytest.raises(RetrieverError, match="inconsistent.*retriever index --full"):
        built.store.load()


def test_a_table_row_pointing_outside_the_manifest_strings_is_reported(built: Retriever) -> None:
    edit_manifest(built, lambda d: d["strings"].update(paths=d["strings"]["paths"][:1]))
    with pytest.raises(RetrieverError, match="inconsistent.*names a path.*retriever index --full"):
        built.store.load()


def test_broken_current_pointer_is_reported(built: Retriever, repo_built: Path) -> None:
    (built.store.root / CURRENT).write_text("gen-does-not-exist")
    assert "CURRENT names no generation" in cli_error(repo_built)


@pytest.mark.parametrize("rows", [0, 1, 4096, 4097, 10_000])
def test_manifest_json_streams_lists_in_slices_without_changing_them(rows: int) -> None:
    import io

    from retriever.index.manifest import write_json

    data = {"chunks": [{"text": f"메모 {i}", "n": i} for i in range(rows)], "files": {"a.md": [1, "é"]}, "v": 3}
    handle = io.StringIO()
    write_json(handle, data)
    assert json.loads(handle.getvalue()) == data
