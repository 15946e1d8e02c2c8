"""The warm server: real process on loopback, the CLI finding it, --watch, swaps under load, and cheap commands."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import anyio
import pytest
from helpers import Hammer, cli, make_notes, serving, wait_for
from mcp import ClientSession, StdioServerParameters, stdio_client

from retriever import Retriever, RetrieverError
from retriever.config import settings
from retriever.serving.client import connect, ready
from retriever.serving.records import ADDRESS_FILE
from retriever.serving.service import Service
from retriever.serving.watch import start_watching

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
            assert service.refresh()["added"] == 1
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


def live(index: Path) -> str:
    return (index / "CURRENT").read_text()


def test_index_is_built_by_the_server_that_holds_the_models(small: tuple[Path, Path]) -> None:
    """`retriever index` beside a running serve: the server embeds the edit with the models it holds, under the
    writer lock, and answers from the new generation at once; the report is `index --json`'s, field for field."""
    notes, index = small
    where = ["--notes", str(notes), "--index", str(index)]
    with serving(notes, index) as (connection, _):
        before = live(index)
        (notes / "c.md").write_text("## 드롭아웃 비율\n- 0.1에서 시작해서 과적합이면 올린다\n", encoding="utf-8")
        served = cli("index", *where, "--json", "--timings")
        assert served.returncode == 0, served.stderr
        assert "server" in served.stderr and "model load" not in served.stderr  # built without a model here
        report = json.loads(served.stdout)
        assert (report["added"], report["unchanged"], report["embedded"], report["up_to_date"]) == (1, 2, 1, False)
        assert live(index) != before
        answer = connection.call("/ask", {"question": "dropout 은 얼마로?", "k": 1})
        assert answer is not None and answer["results"][0]["heading"] == "드롭아웃 비율"  # loaded, no rebuild

        again = cli("index", *where, "--json")  # nothing changed: the server says so, as a local build would
        assert again.returncode == 0 and json.loads(again.stdout)["up_to_date"] is True, again.stderr

        (notes / "c.md").write_text("## 드롭아웃 비율\n- 0.2에서 시작한다\n", encoding="utf-8")
        local = cli("index", *where, "--json", "--no-server", "--timings")
        assert local.returncode == 0 and "model load" in local.stderr, local.stderr
        assert list(json.loads(local.stdout)) == list(report)  # the same fields, in the same order

        other = cli("index", *where, "--encoders", "use", "--timings")  # not what the server builds with: built here
        assert other.returncode == 0, other.stderr
        assert "does not build this update" in other.stderr and "model load" in other.stderr

        (notes / "a.md").unlink()
        (notes / "b.md").unlink()
        (notes / "c.md").unlink()
        failed = cli("index", *where)  # the server's failed build is the client's one-line error
        assert failed.returncode == 1 and failed.stderr.count("\n") == 1 and "no notes to index" in failed.stderr
        assert connection.call("/health")["status"] == "ok"  # and the server still answers from the last index


def test_questions_during_an_update_are_answered_from_the_generation_before_it(
    small: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update the server builds (held in its embedding here, as a long one would be) keeps no question waiting:
    one asked meanwhile is answered at once from the live generation, one after the commit from the new one. So is
    a question asked while another question's update builds: that one waits for its update, and gets the edit."""
    notes, index = small
    release = tmp_path / "release"
    monkeypatch.setenv("RETRIEVER_HOLD", f"embedding:{release}")
    dropout = {"question": "dropout 은 얼마로?", "k": 1}
    with serving(notes, index) as (connection, _):
        before = live(index)
        (notes / "c.md").write_text("## 드롭아웃 비율\n- 0.1에서 시작해서 과적합이면 올린다\n", encoding="utf-8")
        command = [sys.executable, "-m", "retriever", "index", "--notes", str(notes), "--index", str(index), "--json"]
        client = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: any(index.glob(".tmp-gen-*")), what="the server's update to start its generation")
            during = connection.call("/ask", dropout, timeout=60)
            assert during is not None and during["results"][0]["heading"] != "드롭아웃 비율"
            assert live(index) == before and client.poll() is None  # the update was still held
        finally:
            release.touch()
            out, errors = client.communicate(timeout=300)
        assert client.returncode == 0 and json.loads(out)["added"] == 1, errors
        after = connection.call("/ask", dropout)
        assert after is not None and after["results"][0]["heading"] == "드롭아웃 비율"

        release.unlink()
        (notes / "d.md").write_text("## 학습률 예열\n- 워밍업은 천 스텝 동안 한다\n", encoding="utf-8")
        with ThreadPoolExecutor(1) as pool:
            asking = pool.submit(connection.call, "/ask", {"question": "warmup 은 몇 스텝?", "k": 1})
            try:
                wait_for(lambda: any(index.glob(".tmp-gen-*")), what="the question's update to start")
                meanwhile = connection.call("/ask", dropout, timeout=60)
                assert meanwhile is not None and meanwhile["results"][0]["heading"] == "드롭아웃 비율"
                assert not asking.done()  # its update was still held
            finally:
                release.touch()
            answered = asking.result(timeout=300)
        assert answered is not None and answered["results"][0]["heading"] == "학습률 예열"


def test_a_server_that_dies_mid_update_leaves_the_update_to_the_client(small: tuple[Path, Path]) -> None:
    """The server is killed as by a power cut while it embeds the update: the client builds it itself, under the
    writer lock the dead server no longer holds, and the previous generation stayed live meanwhile."""
    notes, index = small
    before = live(index)
    where = ["--notes", str(notes), "--index", str(index), "--port", "0"]
    dying = subprocess.Popen(
        [sys.executable, "-m", "retriever", "serve", *where],
        env={**os.environ, "RETRIEVER_FAILPOINT": "embedding"},
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (found := connect(index, notes)) is not None and ready(found))
        (notes / "c.md").write_text("## 드롭아웃 비율\n- 0.1에서 시작한다\n", encoding="utf-8")
        built = cli("index", "--notes", str(notes), "--index", str(index), "--json")
        assert dying.wait(timeout=60) == -signal.SIGKILL  # it died at the fail point, in the update
    finally:
        if dying.poll() is None:
            dying.kill()
    assert built.returncode == 0, built.stderr
    assert "went away during the update; building here" in built.stderr
    assert json.loads(built.stdout)["added"] == 1 and live(index) != before


def mapped_libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_mcp_watch_beside_a_serve_sends_its_rebuilds_there(small: tuple[Path, Path]) -> None:
    """`mcp --watch` over the notes a `serve` already serves: its watcher has the serve build each change, so it
    never loads the passage encoder (onnxruntime, which its numpy question encoder does without), and it answers
    from the new generation once the serve has committed it."""
    notes, index = small
    command = ["-m", "retriever", "mcp", "--notes", str(notes), "--index", str(index), "--watch"]
    params = StdioServerParameters(command=sys.executable, args=command, env=dict(os.environ))

    async def status(client: ClientSession) -> dict:
        return (await client.call_tool("status", {})).structured_content or {}

    async def session() -> tuple[int, dict]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            while (seen := await status(client)).get("status") == "loading" or not seen.get("watching"):
                await anyio.sleep(0.2)
            (notes / "c.md").write_text("## 드롭아웃 비율\n- 0.1에서 시작해서 과적합이면 올린다\n", encoding="utf-8")
            with anyio.fail_after(120):
                while (seen := await status(client)).get("chunks") != 3:
                    await anyio.sleep(0.2)
            answer = (await client.call_tool("ask", {"question": "dropout 은 얼마로?", "k": 1})).structured_content
            return seen["pid"], answer or {}

    with serving(notes, index) as (_, serve):
        watcher, answer = anyio.run(session)
        assert "onnxruntime" in mapped_libraries(serve.pid)  # the serve built the change
    assert answer["results"][0]["heading"] == "드롭아웃 비율"
    assert watcher != serve.pid
