"""The `$ retriever …` examples of the README and the manual (docs/*.md), run for real: `--write` puts what they
print into those pages, and tests/test_readme.py checks that they still print it, and the `>>>` sessions of the
Python API (```pycon blocks), which doctest checks as shown.

    .venv/bin/python bench/readme.py [--write] [PAGE …]

Each block of examples runs its commands in order as a person would type them, with stdout and stderr together as
a terminal shows them, in a copy of notes/ and eval/. A block that shows `retriever index` gets a fresh copy,
indexed first unless the block begins with the indexing; the other blocks only read, and share one indexed copy
(an up-to-date index answers without writing anything, as tests/test_sessions.py checks). A block shown on several
pages (the README's are in the manual too) runs once. Comparison masks what differs from run to run: decimals
(scores, seconds, rates), generation names, build times, fingerprints. A line `  ...` on a page stands for the
rest of the output. A Python session runs in the shared copy too, as a whole, and is written by hand: `--write`
leaves it alone.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
SESSION = re.compile(r"^```pycon\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
VOLATILE = [
    (re.compile(r"gen-\d{8}T\d{6}-[0-9a-f]{8}"), "gen-…"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"), "(time)"),
    (re.compile(r"fingerprint: [0-9a-f]{16}"), "fingerprint: …"),
    (re.compile(r"-?\d+\.\d+"), "#"),
]
REST = "  ..."


@dataclass
class Example:
    command: str  # as typed, after "$ "
    shown: list[str]  # the output lines the page shows
    start: int  # where the block's text starts in the page
    end: int


def blocks(page: str) -> list[list[Example]]:
    """The fenced blocks that hold examples, each as its examples in order."""
    found = []
    for fence in FENCE.finditer(page):
        examples: list[Example] = []
        for line in fence.group(1).splitlines():
            if line.startswith("$ retriever "):
                examples.append(Example(line[2:], [], fence.start(1), fence.end(1)))
            elif examples:
                examples[-1].shown.append(line)
        if examples:
            found.append(examples)
    return found


def indexes(command: str) -> bool:
    return shlex.split(command)[1:2] == ["index"]


class Runner:
    """Runs blocks of examples in copies of the notes under `work`, each distinct block once."""

    def __init__(self, work: Path, model_cache: str | None) -> None:
        self.work = work
        self.env = {name: value for name, value in os.environ.items() if not name.startswith("RETRIEVER_")}
        self.env |= {"HF_HUB_OFFLINE": "1", "RETRIEVER_NO_SERVER": "1"}
        if model_cache:
            self.env["RETRIEVER_CACHE_DIR"] = model_cache
        self.shared: Path | None = None
        self.printed: dict[tuple[str, ...], list[list[str]]] = {}

    def run(self, examples: list[Example]) -> list[list[str]]:
        """What each example of one block prints, run in order."""
        commands = tuple(example.command for example in examples)
        if commands not in self.printed:
            if any(map(indexes, commands)):
                folder = self.copy(f"block-{len(self.printed)}", indexed=not indexes(commands[0]))
            else:
                folder = self.reader()
            self.printed[commands] = [self.retriever(folder, *shlex.split(command)[1:]) for command in commands]
        return self.printed[commands]

    def session(self, code: str) -> list[str]:
        """What doctest reports of a Python session: nothing when every line prints what the session shows."""
        script = self.reader() / "session.txt"
        script.write_text(code, encoding="utf-8")
        flags = ["-o", "ELLIPSIS", "-o", "NORMALIZE_WHITESPACE"]
        done = subprocess.run(
            [sys.executable, "-m", "doctest", *flags, script.name],
            check=False,
            cwd=script.parent,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        return done.stdout.splitlines()

    def reader(self) -> Path:
        """The copy that blocks which only read share, indexed once."""
        self.shared = self.shared or self.copy("shared", indexed=True)
        return self.shared

    def copy(self, name: str, indexed: bool) -> Path:
        folder = self.work / name
        shutil.copytree(REPO / "notes", folder / "notes")
        shutil.copytree(REPO / "eval", folder / "eval")
        if indexed:
            self.retriever(folder, "index", "--quiet")  # the index the example's reader has already built
        return folder

    def retriever(self, folder: Path, *argv: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-m", "retriever", *argv],
            check=False,  # an example may show a failure
            cwd=folder,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        return done.stdout.rstrip("\n").splitlines()


def masked(line: str) -> str:
    for pattern, stand_in in VOLATILE:
        line = pattern.sub(stand_in, line)
    return line.rstrip()


def differences(example: Example, printed: list[str]) -> list[str]:
    """How the page's lines differ from what was printed, once masked; empty when they agree."""
    shown = example.shown
    if REST in shown:
        cut = shown.index(REST)
        shown, printed = shown[:cut], printed[:cut]
    mine, theirs = [masked(line) for line in shown], [masked(line) for line in printed]
    if mine == theirs:
        return []
    common = min(len(mine), len(theirs))
    unmatched = [f"  shown only:   {a!r}" for a in mine[common:]] + [f"  printed only: {b!r}" for b in theirs[common:]]
    return [f"{example.command}:", *(f"  shown:  {a!r}\n  prints: {b!r}" for a, b in zip(mine, theirs) if a != b)] + (
        [f"  the page has {len(mine)} lines, the command prints {len(theirs)}", *unmatched]
        if len(mine) != len(theirs)
        else []
    )


def problems(page: Path, runner: Runner) -> list[str]:
    """Every example of the page that prints something else than it shows, line by line."""
    text = page.read_text(encoding="utf-8")
    shown = [(e, p) for examples in blocks(text) for e, p in zip(examples, runner.run(examples))]
    lines = [line for example, printed in shown for line in differences(example, printed)]
    lines += [line for session in SESSION.findall(text) for line in runner.session(session)]
    return [f"{page.relative_to(REPO)}:", *lines] if lines else []


def rewritten(page: str, runner: Runner) -> str:
    """The page with every example's output replaced by what it prints now (a `  ...` cut kept)."""
    for examples in reversed(blocks(page)):
        text = []
        for example, printed in zip(examples, runner.run(examples)):
            if REST in example.shown:
                printed = [*printed[: example.shown.index(REST)], REST]
            text += [f"$ {example.command}", *printed]
        page = page[: examples[0].start] + "\n".join(text) + "\n" + page[examples[0].end :]
    return page


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="Put what the examples print into the pages.")
    parser.add_argument("pages", nargs="*", type=Path, help="Pages to run (default: the README and docs/*.md).")
    args = parser.parse_args()
    pages = [page.resolve() for page in args.pages] or PAGES
    with tempfile.TemporaryDirectory() as work:
        runner = Runner(Path(work), os.environ.get("RETRIEVER_CACHE_DIR"))
        if args.write:
            for page in pages:
                page.write_text(rewritten(page.read_text(encoding="utf-8"), runner), encoding="utf-8")
            return
        found = [line for page in pages for line in problems(page, runner)]
    print("\n".join(found) or "every example prints what its page shows")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
