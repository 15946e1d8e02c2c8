"""The three dev corpora, each as (notes folder, query file): the repo's notes, konlpy's Korean bills, and Hecto
Financial's Korean payment guides."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "retriever-bench"
HECTO = "hectofinancial-mcp-server==0.5.3"
HECTO_DOCS = PurePosixPath("hectofinancial_mcp_server/resource/docs")


def kobill_dir() -> Path:
    """The bills inside the installed konlpy package, found without importing konlpy (which wants a JVM)."""
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the kobill corpus needs konlpy: pip install 'konlpy==0.6.0'")
    return Path(spec.submodule_search_locations[0]) / "data" / "corpus" / "kobill"


def hecto_dir() -> Path:
    """Hecto's Korean guides and blog posts (40 .md files, MIT), a docs folder nobody here wrote or tuned for.

    Downloaded from PyPI once into the cache. Only the Korean prose is kept: the English copies (en/, blog/en/),
    the per-endpoint API reference (api/) and the agent instructions (instructions.md) are left out.
    """
    out = CACHE / "hecto"
    if out.is_dir():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:  # same file system as out, so the rename below is atomic
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, HECTO], check=True)
        staging = Path(tmp) / "hecto"
        with zipfile.ZipFile(next(Path(tmp).glob("*.whl"))) as wheel:
            for name in wheel.namelist():
                path = PurePosixPath(name)
                if path.suffix != ".md" or HECTO_DOCS not in path.parents:
                    continue
                rel = path.relative_to(HECTO_DOCS)
                if rel.parts[0] in ("en", "api", "instructions.md") or rel.parts[:2] == ("blog", "en"):
                    continue
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(wheel.read(name))
        staging.rename(out)  # only a complete copy ever lands at out
    return out


CORPORA = {  # name → (where the notes are, its query file)
    "notes": (lambda: REPO / "notes", REPO / "eval" / "notes.tsv"),
    "kobill": (kobill_dir, REPO / "eval" / "kobill.tsv"),
    "hecto": (hecto_dir, REPO / "eval" / "hecto.tsv"),
}


def materialise(work: Path, names: list[str] | None = None) -> dict[str, tuple[Path, Path]]:
    """Copies of the corpora under work, so indexing them never writes into the repo, site-packages or the cache."""
    return {
        name: (Path(shutil.copytree(CORPORA[name][0](), work / name)), CORPORA[name][1])
        for name in (names or list(CORPORA))
    }
