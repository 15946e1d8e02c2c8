"""The manual builds as a site with no broken link or anchor, and every file of the repository it names exists,
so a moved module or bench fails here until its page is updated."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
NAMED = re.compile(r"`((?:retriever|bench|tests|eval|deploy)/[\w./-]*)`")
LINK = re.compile(r"\]\(([^)#:]+)(?:#[^)]*)?\)")  # a relative link; mkdocs checks those of docs/ itself
WRITTEN = "bench/results/"  # what the benches write, not in the repository


def test_the_manual_builds_strictly(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "site" / "commands" / "index.html").is_file()


def test_every_file_the_pages_name_exists() -> None:
    named = {(page, path) for page in PAGES for path in NAMED.findall(page.read_text(encoding="utf-8"))}
    named = {(page, REPO / path) for page, path in named if not path.startswith(WRITTEN)}
    linked = {
        (page, page.parent / path) for page in PAGES[:2] for path in LINK.findall(page.read_text(encoding="utf-8"))
    }
    assert len(named) > 20 and len(linked) > 10
    missing = sorted(f"{page.name}: {path.relative_to(REPO)}" for page, path in named | linked if not path.exists())
    assert not missing, "\n".join(missing)
