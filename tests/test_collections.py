"""Several folders in one index, set by retriever.toml: each a named collection, with exclude globs and every
.gitignore on the way honoured; flags and environment variables override the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli

from retriever import Folder, Library, Retriever

QUESTION = "배치 사이즈는 어떻게 정하나요?"
CONFIG = """
encoders = "e5"
exclude = ["*.draft.md"]

[collections.kaggle]
folder = "kaggle"

[collections.journal]
folder = "../elsewhere/journal"
exclude = ["private/"]
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    """Two folders far apart, each with notes an exclude or a .gitignore leaves out."""
    home = tmp_path / "home"
    write(home / "retriever.toml", CONFIG)
    write(home / "kaggle/batch.md", "## 배치사이즈\n- GPU가 허용한 크게\n")
    write(home / "kaggle/batch.draft.md", "## 배치사이즈 초안\n- 아직 쓰는 중\n")  # global exclude
    write(home / "kaggle/.gitignore", "build/\n")
    write(home / "kaggle/build/copy.md", "## 배치사이즈\n- 빌드가 만든 사본\n")  # its folder's .gitignore
    journal = tmp_path / "elsewhere/journal"
    write(journal / "day.md", "# 3월 5일\n오늘 배치 사이즈를 바꿔 보았다.\n")
    write(journal / "private/diary.md", "# 비밀\n배치 사이즈 고민\n")  # the collection's exclude
    write(journal / "sub/.gitignore", "*.md\n!keep.md\n")
    write(journal / "sub/drop.md", "# 버림\n배치\n")
    write(journal / "sub/keep.md", "# 남김\n배치 사이즈 메모\n")
    return home


def test_collections_index_together_and_ask_one_or_all(folders: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folders)  # retriever.toml found where the command runs
    built = cli("index", "--json")
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["notes"] == 3
    everything = json.loads(cli("ask", QUESTION, "-k", "9", "--json").stdout)["results"]
    assert {h["path"] for h in everything} == {"kaggle/batch.md", "journal/day.md", "journal/sub/keep.md"}
    one = json.loads(cli("ask", QUESTION, "-c", "journal", "-k", "9", "--json").stdout)["results"]
    assert {h["path"] for h in one} == {"journal/day.md", "journal/sub/keep.md"}
    env = json.loads(cli("ask", QUESTION, "--json", env={"RETRIEVER_COLLECTION": "kaggle"}).stdout)["results"]
    assert [h["path"] for h in env] == ["kaggle/batch.md"]
    note = cli("get", "journal/day.md")
    assert note.returncode == 0 and "바꿔 보았다" in note.stdout
    info = json.loads(cli("info", "--json").stdout)
    assert info["collections"] == ["kaggle", "journal"] and info["models"][0].startswith("intfloat/multilingual-e5")
    unknown = cli("ask", QUESTION, "-c", "docs")
    assert unknown.returncode == 1 and "its collections are kaggle, journal" in unknown.stderr


def test_flags_and_the_config_option_override_the_file(folders: Path, tmp_path: Path) -> None:
    # from another folder, the file named by --config; its relative folders are relative to it
    elsewhere = cli("--config", str(folders / "retriever.toml"), "index", "--index", str(tmp_path / "i1"), "--json")
    assert elsewhere.returncode == 0 and json.loads(elsewhere.stdout)["notes"] == 3, elsewhere.stderr
    # --notes names one folder instead, without the file's collections or excludes (its own .gitignore counts)
    lone = cli("index", "--notes", str(folders / "kaggle"), "--index", str(tmp_path / "i2"), "--encoders", "e5")
    assert lone.returncode == 0 and "indexed 2 notes" in lone.stdout, lone.stderr


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ("colections = 1", "unknown key 'colections'"),
        ("[collections.kaggle\nfolder = 'k'", "not valid TOML"),
        ("[collections.'a/b']\nfolder = 'k'", "must be letters"),
        ("[collections.k]\npath = 'k'", "takes folder (required) and exclude"),
        ("notes = 'n'\n[collections.k]\nfolder = 'k'", "not both"),
        ("exclude = 'drafts/'\nnotes = 'n'", "exclude must be a list"),
    ],
)
def test_a_bad_config_is_one_line_and_exit_1(tmp_path: Path, config: str, words: str) -> None:
    (tmp_path / "retriever.toml").write_text(config, encoding="utf-8")
    result = cli("ask", QUESTION)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and words in result.stderr, result.stderr
    assert not (tmp_path / "index").exists()


def test_the_python_api_takes_a_library(tmp_path: Path) -> None:
    write(tmp_path / "a/x.md", "## 배치사이즈\n- GPU가 허용한 크게\n")
    write(tmp_path / "b/y.md", "## 학습률\n- warm-up 후 줄인다\n")
    library = Library((Folder(tmp_path / "a", "first"), Folder(tmp_path / "b", "second")))
    api = Retriever(library, tmp_path / "index", models=["e5"])
    assert [h.path for h in api.ask(QUESTION, k=1)] == ["first/x.md"]
    assert [h.path for h in api.ask(QUESTION, k=1, collection="second")] == ["second/y.md"]
