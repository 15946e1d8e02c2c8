"""The README's `$ retriever …` examples, run for real: `--write` puts what they print into the README, and
tests/test_readme.py checks that they still print it.

    .venv/bin/python bench/readme.py [--write]

Each block of examples runs in a fresh copy of notes/ and eval/, indexed first unless the block shows the
indexing, its commands in order as a person would type them, with stdout and stderr together as a terminal
shows them. Comparison masks what differs from
run to run: decimals (scores, seconds, rates), generation names, build times, fingerprints. A line `  ...` in the
README stands for the rest of the output.
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
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
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
    shown: list[str]  # the output lines the README shows
    start: int  # where the block's text starts in the README
    end: int


def blocks(readme: str) -> list[list[Example]]:
    """The fenced blocks that hold examples, each as its examples in order."""
    found = []
    for fence in FENCE.finditer(readme):
        examples: list[Example] = []
        for line in fence.group(1).splitlines():
            if line.startswith("$ retriever "):
                examples.append(Example(line[2:], [], fence.start(1), fence.end(1)))
            elif examples:
                examples[-1].shown.append(line)
        if examples:
            found.append(examples)
    return found


def run(examples: list[Example]) -> list[list[str]]:
    """What each example of one block prints, run in order in a fresh copy of the notes."""
    with tempfile.TemporaryDirectory() as work:
        shutil.copytree(REPO / "notes", Path(work) / "notes")
        shutil.copytree(REPO / "eval", Path(work) / "eval")
        env = {name: value for name, value in os.environ.items() if not name.startswith("RETRIEVER_")}
        env |= {"HF_HUB_OFFLINE": "1", "RETRIEVER_NO_SERVER": "1"}
        if "RETRIEVER_CACHE_DIR" in os.environ:
            env["RETRIEVER_CACHE_DIR"] = os.environ["RETRIEVER_CACHE_DIR"]

        def retriever(*argv: str) -> list[str]:
            done = subprocess.run(
                [sys.executable, "-m", "retriever", *argv],
                check=False,  # an example may show a failure
                cwd=work,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=600,
            )
            return done.stdout.rstrip("\n").splitlines()

        if not examples[0].command.startswith("retriever index"):
            retriever("index", "--quiet")  # the index the example's reader has already built
        return [retriever(*shlex.split(example.command)[1:]) for example in examples]


def masked(line: str) -> str:
    for pattern, stand_in in VOLATILE:
        line = pattern.sub(stand_in, line)
    return line.rstrip()


def differences(example: Example, printed: list[str]) -> list[str]:
    """How the README's lines differ from what was printed, once masked; empty when they agree."""
    shown = example.shown
    if REST in shown:
        cut = shown.index(REST)
        shown, printed = shown[:cut], printed[:cut]
    mine, theirs = [masked(line) for line in shown], [masked(line) for line in printed]
    if mine == theirs:
        return []
    return [f"{example.command}:", *(f"  README: {a!r}\n  prints: {b!r}" for a, b in zip(mine, theirs) if a != b)] + (
        [f"  README has {len(mine)} lines, the command prints {len(theirs)}"] if len(mine) != len(theirs) else []
    )


def rewritten(readme: str) -> str:
    """The README with every example's output replaced by what it prints now (a `  ...` cut kept)."""
    for examples in reversed(blocks(readme)):
        text = []
        for example, printed in zip(examples, run(examples)):
            if REST in example.shown:
                printed = [*printed[: example.shown.index(REST)], REST]
            text += [f"$ {example.command}", *printed]
        readme = readme[: examples[0].start] + "\n".join(text) + "\n" + readme[examples[0].end :]
    return readme


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="Put what the examples print into the README.")
    args = parser.parse_args()
    readme = README.read_text(encoding="utf-8")
    if args.write:
        README.write_text(rewritten(readme), encoding="utf-8")
        return
    problems = [
        line for examples in blocks(readme) for e, p in zip(examples, run(examples)) for line in differences(e, p)
    ]
    print("\n".join(problems) or "every README example prints what the README shows")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
