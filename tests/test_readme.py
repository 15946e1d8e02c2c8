"""The `$ retriever …` examples of the README and the manual (docs/*.md) still print what they show
(bench/readme.py --write renews them), and the manual's Python sessions answer as shown."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from readme import PAGES, README, SESSION, Runner, blocks, problems

SHOWN = [page for page in PAGES if blocks(text := page.read_text(encoding="utf-8")) or SESSION.search(text)]


def commands(page: Path) -> set[str]:
    """The subcommands the page's examples run."""
    found = blocks(page.read_text(encoding="utf-8"))
    return {shlex.split(example.command)[1] for examples in found for example in examples}


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Runner:
    return Runner(tmp_path_factory.mktemp("examples"), str(model_cache))  # a block shown on two pages runs once


@pytest.mark.parametrize("page", SHOWN, ids=[page.name for page in SHOWN])
def test_every_example_prints_what_its_page_shows(page: Path, runner: Runner) -> None:
    found = problems(page, runner)
    assert not found, "\n".join([*found, "run bench/readme.py --write if the change is meant"])


def test_the_readme_shows_five_commands_and_the_manual_every_one() -> None:
    assert len(commands(README)) >= 5
    manual = set().union(*(commands(page) for page in SHOWN if page != README))
    assert {"ask", "similar", "index", "eval", "info", "get", "doctor"} <= manual
