"""Shared by several test files: a tiny notes folder and the real command run in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NOTES = {
    "a.md": "## 배치사이즈\n- GPU가 허용한 크게\n- 전체 데이터의 10%를 넘지 않게\n",
    "b.md": "## 학습률\n- 텍스트면 bert에 warm-up scheduler, lr=1e-4\n",
}


def make_notes(folder: Path) -> Path:
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in its own process, so it can be killed and run concurrently."""
    return subprocess.run(
        [sys.executable, "-m", "retriever", *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
