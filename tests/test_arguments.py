"""Arguments checked at the door, in one line, before any model or index is touched."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from helpers import cli

from retriever import Retriever, RetrieverError
from retriever.milvus.connection import quiet_pymilvus


@pytest.mark.parametrize("k", [None, "5", 1.5, float("inf"), float("nan"), 0, 101, True])
def test_python_api_refuses_a_bad_k_before_any_work(tmp_path: Path, k: object) -> None:
    retriever = Retriever(tmp_path / "no-notes", tmp_path / "no-index")  # neither exists: k is checked first
    with pytest.raises(RetrieverError, match="k must be a whole number from 1 to 100"):
        retriever.ask("배치 사이즈", k=k)  # type: ignore[arg-type]
    with pytest.raises(RetrieverError, match="k must be a whole number from 1 to 100"):
        retriever.similar("배치 사이즈", k=k)  # type: ignore[arg-type]
    assert not (tmp_path / "no-index").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"notes_dir": None, "index_dir": None}, "notes_dir must be a folder path"),
        ({"index_dir": 5}, "index_dir must be a folder path"),
        ({"store": 5}, "store must be"),
        ({"models": 5}, "models must be a model name"),
        ({"models": ["e5", 5]}, "models must be a model name"),
    ],
)
def test_python_api_refuses_bad_arguments_with_what_to_pass(args: dict[str, object], words: str) -> None:
    with pytest.raises(RetrieverError, match=words):
        Retriever(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("store", "words"),
    [
        ("milvus://h:notaport/x", "should look like milvus://HOST:PORT/NAME"),
        ("milvus://h:99999/x", "should look like milvus://HOST:PORT/NAME"),
        ("{tmp}/nonexistent/sub/x.db", "does not exist; create it first"),
    ],
)
def test_a_bad_store_is_one_line_and_creates_nothing(tmp_path: Path, store: str, words: str) -> None:
    notes = Path(__file__).resolve().parent.parent / "notes"
    result = cli(
        "ask", "배치", "--store", store.format(tmp=tmp_path), "--notes", str(notes), "--index", str(tmp_path / "ix")
    )
    assert result.returncode == 1 and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "ix").exists() and not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize("content", [os.urandom(4096), b""])
def test_a_file_where_a_milvus_lite_database_should_be_is_left_alone(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "x.db").write_bytes(content)
    notes = Path(__file__).resolve().parent.parent / "notes"
    for command in (["ask", "배치"], ["index"]):
        result = cli(
            *command, "--store", str(tmp_path / "x.db"), "--notes", str(notes), "--index", str(tmp_path / "ix")
        )
        assert result.returncode == 1 and "is a file, not a Milvus Lite database" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "x.db").read_bytes() == content


def test_a_milvus_store_without_pymilvus_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # as if the extra were not installed
    with pytest.raises(RetrieverError, match="pip install 'pymilvus"):
        quiet_pymilvus()


def test_info_takes_the_notes_folder_as_every_command_does(small: tuple[Path, Path]) -> None:
    notes, index = small
    result = cli("info", "--notes", str(notes), "--index", str(index), "--json")
    assert result.returncode == 0 and '"chunks": 2' in result.stdout


def test_get_never_reads_a_note_past_the_size_bound(small: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from retriever.reading import notes as notes_module

    notes, index = small
    retriever = Retriever(notes, index, auto_update=False)
    path = retriever.ask("배치", k=1)[0].path
    assert retriever.get(path)["text"]
    monkeypatch.setattr(notes_module, "MAX_NOTE_BYTES", 10)  # as if the note had grown past the bound
    with pytest.raises(RetrieverError, match="larger than"):
        retriever.get(path)
