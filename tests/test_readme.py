"""The README's `$ retriever …` examples still print what it shows (bench/readme.py --write renews them)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from readme import README, blocks, differences, run


def test_every_readme_example_prints_what_the_readme_shows() -> None:
    found = blocks(README.read_text(encoding="utf-8"))
    assert sum(map(len, found)) >= 9  # ask, ask --json, similar, index twice, eval, info, get, doctor
    problems = [line for examples in found for e, p in zip(examples, run(examples)) for line in differences(e, p)]
    assert not problems, "\n".join([*problems, "run bench/readme.py --write if the change is meant"])
