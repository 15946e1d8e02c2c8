"""The two dev corpora, each as (notes folder, query file): the repo's notes, and konlpy's Korean bills."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def kobill_dir() -> Path:
    """The bills inside the installed konlpy package, found without importing konlpy (which wants a JVM)."""
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the kobill corpus needs konlpy: pip install 'konlpy==0.6.0'")
    return Path(spec.submodule_search_locations[0]) / "data" / "corpus" / "kobill"


def materialise(work: Path) -> dict[str, tuple[Path, Path]]:
    """Copies of both corpora under work, so indexing them never writes into the repo or site-packages."""
    notes = Path(shutil.copytree(REPO / "notes", work / "notes"))
    kobill = Path(shutil.copytree(kobill_dir(), work / "kobill"))
    return {"notes": (notes, REPO / "eval" / "notes.tsv"), "kobill": (kobill, REPO / "eval" / "kobill.tsv")}
