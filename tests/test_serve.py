"""The warm server: real process on loopback, the CLI finding it, --watch, swaps under load, and cheap commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from helpers import Hammer, cli, make_notes, serving, wait_for

from retriever import Retriever, RetrieverError
from retriever.config import settings
from retriever.records import ADDRESS_FILE
from retriever.service import Service
from retriever.watch import start_watching

pytestmark = pytest.mark.slow  # real `retriever serve` processes
QUESTION = "배치 사이즈는 얼마나 크게?"


@pytest.fixture
def server(small: tuple[Path, Path]) -> Iterator[tuple[Path, Path, str, subprocess.Popen[str]]]:
    notes, index = small
    with serving(notes, index, "--watch") as (connection, process):
        yield notes, index, connection, process


def test_ask_goes_through_the_server_and_answers_as_in_process(server) -> None:
    notes, index, connection, process = server
    where = ["--notes", str(notes), "--index", str(index), "--json"]
    served = cli("ask", QUESTION, *where, "--timings")
    local = cli("ask", QUESTION, *where, "--no-server")
    assert served.returncode == local.returncode == 0, served.stderr + local.stderr
    assert "server" in served.stderr and "model load" not in served.stderr  # answered without loading a model
    assert "model load" in cli("ask", QUESTION, *where, "--no-server", "--timings").stderr
    ours, theirs = json.loads(served.stdout)["results"], json.loads(local.stdout)["results"]
    assert [h["id"] for h in ours] == [h["id"] for h in theirs]
    assert [h["score"] for h in ours] == pytest.approx([h["score"] for h in theirs], abs=1e-3)

    narrowed = cli("ask", QUESTION, *where, "--path", "b.md", "--timings")  # filters travel to the server
    assert "model load" not in narrowed.stderr and [h["path"] for h in json.loads(narrowed.stdout)["results"]] == [
        "b.md"
    ]
    unmatched = cli("ask", QUESTION, *where, "--path", "c*.md")
    assert unmatched.returncode == 1 and "matches no indexed note" in unmatched.stderr
    with pytest.raises(RetrieverError, match="unknown field 'colour'"):
        connection.call("/ask", {"question": QUESTION, "colour": "red"})
    empty = cli("ask", " ", *where)  # the server's error reaches the user as one line
    assert empty.returncode == 1 and empty.stderr.count("\n") == 1 and "empty" in empty.stderr
    garbled = cli("ask", "\udcb9\udce8", *where)  # cp949 bytes on the command line: checked before the server is asked
    assert garbled.returncode == 1 and garbled.stderr.count("\n") == 1 and "not valid Unicode" in garbled.stderr
    status = connection.call("/status")
    assert status is not None and status["chunks"] == 2 and status["watching"] is True
    passage = connection.call("/get?" + urlencode({"id": ours[0]["id"]}))
    assert passage is not None and passage["text"] == ours[0]["text"]

    process.terminate()
    process.wait(timeout=60)
    assert not (index / ADDRESS_FILE).exists()
    after = cli("ask", QUESTION, *where)  # no server any more: answered in-process
    assert after.returncode == 0 and json.loads(after.stdout)["results"][0]["id"] == ours[0]["id"]


def test_a_watched_note_edit_becomes_searchable(server) -> None:
    notes, _, connection, _ = server
    (notes / "c.md").write_text("## 드롭아웃 비율\n- 0.1에서 시작해서 과적합이면 올린다\n", encoding="utf-8")
    saved = time.monotonic()

    def top() -> str | None:
        answer = connection.call("/ask", {"question": "dropout 은 얼마로?", "k": 1})
        return answer and answer["results"][0]["heading"] == "드롭아웃 비율" and time.monotonic()

    assert wait_for(top, 60) - saved < 30


def test_queries_during_a_swap_see_one_whole_index(small: tuple[Path, Path]) -> None:
    notes, index = small
    service = Service(Retriever(notes, index, models=["e5"], auto_update=False))
    service.warm()
    with Hammer(lambda: len(service.search("ask", QUESTION, 10)["results"]), threads=3) as asking:
        for n in range(3):
            (notes / f"new{n}.md").write_text(f"## 새 질문 {n}\n- 새 답변 {n}\n", encoding="utf-8")
            assert service.refresh().added == 1
        # one more whole round after the last swap, so the newest index is seen before the threads stop
        count = len(asking.results)
        while len(asking.results) < count + 3 and not asking.failures:
            time.sleep(0.01)
    assert not asking.failures
    seen = asking.results
    assert set(seen) <= {2, 3, 4, 5} and seen[-1] == 5  # whole indexes only, ending with the newest


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["--help"], 0),
        (["info", "--index", "{index}"], 0),
        (["ask", "질문", "--notes", "missing", "--index", "{index}"], 1),
    ],
)
def test_help_info_and_errors_import_no_torch(small: tuple[Path, Path], command: list[str], code: int) -> None:
    args = [arg.format(index=small[1]) for arg in command]
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "retriever", *args], capture_output=True, text=True, check=False
    )
    assert run.returncode == code, run.stderr[-500:]
    assert "retriever.cli" in run.stderr  # the import log is there to be read
    assert not re.search(r"\|\s+(torch|sentence_transformers|transformers)(\.\S+)?$", run.stderr, re.MULTILINE)


def test_a_folder_named_relative_to_the_config_is_watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`folder = "../vault/journal"` reaches the watcher as `cfg/../vault/journal`, under which it reports changes."""
    (tmp_path / "vault").mkdir()
    journal = make_notes(tmp_path / "vault" / "journal")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "retriever.toml").write_text('[collections.journal]\nfolder = "../vault/journal"\n')
    monkeypatch.setenv("RETRIEVER_CONFIG", str(tmp_path / "cfg" / "retriever.toml"))
    chosen = settings(None, tmp_path / "index", None, None)
    service = Service(Retriever(chosen.notes, chosen.index, models=["e5"]))
    service.retriever.ensure_index()
    said: list[str] = []
    stop = start_watching(service, said.append)
    try:
        (journal / "c.md").write_text("## 드롭아웃 비율\n- 0.1에서 시작한다\n", encoding="utf-8")
        wait_for(lambda: any(message.startswith("re-indexed: 1 added") for message in said), 60)
    finally:
        stop.set()
    assert service.status()["stale"] is None
