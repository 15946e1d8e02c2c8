"""Opt-in: the Milvus store against a real Milvus server (PyPI `milvus==2.3.5`), started in its own network
namespace. Run with RETRIEVER_MILVUS_SERVER_TEST=1 as root after `pip install milvus==2.3.5` (or with that package
in a venv of its own, its site-packages added to PYTHONPATH: it depends on nothing).

Milvus 2.3 has no sparse vectors (2.4 brought them), so there the index is published without the lexical channel:
dense questions must equal the local store's, hybrid ranks by the dense channels, lexical mode is refused.

Beyond answers: writers (one SIGKILLed holding the lock, two at once), a reader asking across publishes, user +
password and token authentication, a server restarted under a running `serve`, then read by new readers, and a
build sharded over Ray whose worker is killed mid-build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

pytestmark = [
    pytest.mark.slow,  # a real Milvus server
    pytest.mark.skipif(
        os.environ.get("RETRIEVER_MILVUS_SERVER_TEST") != "1", reason="opt-in: RETRIEVER_MILVUS_SERVER_TEST=1"
    ),
]
STORE = "milvus://127.0.0.1:19530/notes"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("milvus")


@pytest.fixture(scope="module")
def server(folder: Path):
    pytest.importorskip("milvus")
    from milvus_server import start, stop

    pid = start(folder)
    yield pid
    stop(pid)


def environment(token: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without its Milvus settings, with the test's credentials: the token unless a
    user is given."""
    from milvus_server import TOKEN

    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRIEVER_MILVUS_")}
    if "RETRIEVER_MILVUS_USER" not in extra:
        env["RETRIEVER_MILVUS_TOKEN"] = token or TOKEN
    return {**env, **extra}


def command(pid: int, *args: str) -> list[str]:
    from milvus_server import in_namespace

    return in_namespace(pid, sys.executable, "-m", "retriever", *args)


def run(pid: int, *args: str, token: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(pid, *args), capture_output=True, text=True, timeout=900, check=False, env=environment(token, **env)
    )


def ids(result: subprocess.CompletedProcess[str]) -> list[tuple[str, float]]:
    assert result.returncode == 0, result.stderr
    return [(hit["id"], round(hit["score"], 3)) for hit in json.loads(result.stdout)["results"]]


def test_a_real_server_answers_as_the_local_store(server: int, repo_notes: Path, tmp_path: Path) -> None:
    where = ["--notes", str(repo_notes), "--index", str(tmp_path / "index"), "--encoders", "e5"]
    built = run(server, "index", *where, "--store", STORE)
    assert built.returncode == 0 and "no sparse vectors" in built.stderr, built.stderr
    for question in ("배치 사이즈는 어떻게 정하나요?", "How do I start on Kaggle?"):
        asked = ["ask", question, *where, "--mode", "dense", "--json", "--no-server"]
        assert ids(run(server, *asked, "--store", STORE)) == ids(run(server, *asked))
    hybrid = run(server, "ask", "배치", *where, "--store", STORE, "--no-server")
    assert hybrid.returncode == 0 and "kaggle.md" in hybrid.stdout
    lexical = run(server, "ask", "배치", *where, "--store", STORE, "--mode", "lexical", "--no-server")
    assert lexical.returncode == 1 and "no lexical channel" in lexical.stderr


def test_a_rebuild_on_a_real_server_swaps_the_alias(server: int, repo_notes: Path, tmp_path: Path) -> None:
    where = ["--notes", str(repo_notes), "--index", str(tmp_path / "index"), "--encoders", "e5", "--store", STORE]
    assert run(server, "index", *where).returncode == 0
    (repo_notes / "kaggle.md").write_text("## 과일\n- 귤을 가장 좋아한다\n", encoding="utf-8")
    assert run(server, "index", *where).returncode == 0
    answer = run(server, "ask", "좋아하는 과일", *where, "--mode", "dense", "--no-server")
    assert answer.returncode == 0 and "귤" in answer.stdout, answer.stderr


def test_a_wrong_token_is_one_line_and_touches_nothing(server: int, repo_notes: Path, tmp_path: Path) -> None:
    where = ["--notes", str(repo_notes), "--index", str(tmp_path / "index"), "--encoders", "e5", "--store", STORE]
    assert run(server, "index", *where).returncode == 0
    (repo_notes / "kaggle.md").write_text("## 과일\n- 사과를 가장 좋아한다\n", encoding="utf-8")
    for command in (["index", *where], ["ask", "과일", *where, "--no-server"]):
        refused = run(server, *command, token="root:wrong")
        assert refused.returncode == 1, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "RETRIEVER_MILVUS_TOKEN" in refused.stderr
    answer = run(server, "ask", "좋아하는 과일", *where, "--mode", "dense", "--no-server")
    assert answer.returncode == 0 and "사과" not in answer.stdout, answer.stderr  # the live index is as it was


def test_a_killed_writer_is_taken_over_and_two_writers_take_turns(
    server: int, repo_notes: Path, tmp_path: Path
) -> None:
    store = f"{STORE[: STORE.rindex('/')]}/writers"
    where = ["--notes", str(repo_notes), "--encoders", "e5", "--store", store]
    killed = run(server, "index", *where, "--index", str(tmp_path / "a"), RETRIEVER_FAILPOINT="publishing")
    assert killed.returncode == -9, killed.stderr  # SIGKILLed mid-publish, holding the lock
    started = time.monotonic()
    writers = [
        subprocess.Popen(
            command(server, "index", *where, "--index", str(tmp_path / name), "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
        )
        for name in ("a", "b")  # two machines' staging folders, started at the same moment
    ]
    done = [writer.communicate(timeout=900) for writer in writers]
    assert all(w.returncode == 0 for w in writers), [err for _, err in done]
    assert sum("waiting for another build" in err for _, err in done) == 1  # the second waited for the first
    spans = sorted(json.loads(out)["seconds"] for out, _ in done)
    assert time.monotonic() - started >= spans[0] + spans[1] * 0.5  # one after the other, not side by side
    answer = run(server, "ask", "배치", *where, "--index", str(tmp_path / "a"), "--mode", "dense", "--no-server")
    assert answer.returncode == 0 and "kaggle.md" in answer.stdout, answer.stderr


@contextmanager
def serving(server: int, where: list[str]) -> Iterator[str]:
    """`retriever serve` over a store built first, in the server's namespace: its URL while it runs."""
    assert run(server, "index", *where).returncode == 0
    reader = subprocess.Popen(
        command(server, "serve", *where, "--port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    try:
        yield served_url(reader)
    finally:
        reader.kill()


def test_a_reader_never_fails_across_publishes(server: int, repo_notes: Path, tmp_path: Path) -> None:
    """One process asks in a loop while another publishes ten times: no answer may fail."""
    store = f"{STORE[: STORE.rindex('/')]}/swaps"
    where = ["--notes", str(repo_notes), "--index", str(tmp_path / "index"), "--encoders", "e5", "--store", store]
    with serving(server, where) as url:
        asker = subprocess.Popen(
            in_namespace_python(server, ASKER, url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for n in range(10):
            (repo_notes / "kaggle.md").write_text(f"## 배치\n- 바뀐 답 {n}\n", encoding="utf-8")
            published = run(server, "index", *where)
            assert published.returncode == 0, published.stderr
        asker.terminate()
        out, err = asker.communicate(timeout=60)
        asked, failed = (int(x) for x in out.split())
        assert asked > 50 and failed == 0, (asked, failed, err[-2000:])


def test_user_and_password_or_a_token_authenticate(server: int, repo_notes: Path, tmp_path: Path) -> None:
    where = ["--notes", str(repo_notes), "--index", str(tmp_path / "index"), "--encoders", "e5", "--store", STORE]
    assert run(server, "index", *where).returncode == 0
    asked = ["ask", "배치", *where, "--mode", "dense", "--no-server"]
    by_user = run(server, *asked, RETRIEVER_MILVUS_USER="root", RETRIEVER_MILVUS_PASSWORD="Milvus")
    assert by_user.returncode == 0 and "kaggle.md" in by_user.stdout, by_user.stderr
    assert run(server, *asked, token="root:Milvus").returncode == 0
    for refused in (
        run(server, *asked, RETRIEVER_MILVUS_USER="root", RETRIEVER_MILVUS_PASSWORD="wrong"),
        run(server, *asked, token="root:wrong"),
    ):
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "refused the credentials" in refused.stderr and "wrong" not in refused.stderr


LAYOUT_3 = "fbe1f6c"  # the last commit whose stores kept their header in collection properties


def test_a_server_restart_keeps_the_store_for_new_readers(
    server: int, folder: Path, repo_notes: Path, tmp_path: Path
) -> None:
    """Asked while the server is down, serve shows the outage; once the server listens again, its retries answer
    within one backoff step (30 s) and a call's timeouts. New readers, a cold `ask` and a new `serve`, answer too:
    the store's header is a row, which the server keeps, not a collection property, which a 2.3 server forgets.
    A store published by a retriever of layout 3 loses its header on restart: a reader says so and what to do, and
    `index` republishes it without embedding again."""
    from milvus_server import crash, launch

    where = ["--notes", str(repo_notes), "--index", str(tmp_path / "index"), "--encoders", "e5", "--store", STORE]
    old_code = tmp_path / "layout3"
    old_code.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", LAYOUT_3, "retriever"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive.stdout, check=True)
    old_store = f"{STORE[: STORE.rindex('/')]}/layout3"
    old = ["--notes", str(repo_notes), "--index", str(tmp_path / "old"), "--encoders", "e5", "--store", old_store]
    assert run(server, "index", *old, PYTHONPATH=str(old_code)).returncode == 0
    assert run(server, "ask", "배치", *old, "--no-server", PYTHONPATH=str(old_code)).returncode == 0
    asked = ["ask", "배치", *where, "--mode", "dense", "--json", "--no-server"]
    with serving(server, where) as url:
        assert fetch(server, url, "ask")["results"]
        before = ids(run(server, *asked))
        crash(folder)
        seen = [fetch(server, url, "ask"), fetch(server, url, "status")]  # the first finds it gone
        assert "error" in seen[0] and seen[1]["store"]["state"] == "unreachable", seen
        launch(server, folder, timeout=180)
        listening = time.monotonic()
        while not (answer := fetch(server, url, "ask")).get("results") and time.monotonic() < listening + 90:
            time.sleep(1)
        print(f"answered {time.monotonic() - listening:.1f} s after the restarted server listened")
        assert answer.get("results"), answer
        assert fetch(server, url, "status")["store"]["state"] == "ok"
    assert ids(run(server, *asked)) == before  # a cold reader
    with serving(server, where) as url:  # a new serve; its `index` first finds the store up to date
        assert fetch(server, url, "ask")["results"]
    lost = run(server, "ask", "배치", *old, "--no-server")
    assert lost.returncode == 1 and len(lost.stderr.strip().splitlines()) == 1, lost.stderr
    assert "lacks its header row" in lost.stderr and "retriever index" in lost.stderr, lost.stderr
    republished = run(server, "index", *old, "--json")
    assert republished.returncode == 0 and json.loads(republished.stdout)["embedded"] == 0, republished.stderr
    assert run(server, "ask", "배치", *old, "--no-server").returncode == 0


ASKER = """
import json, sys, urllib.request
asked = failed = 0
try:
    while True:
        base, _, token = sys.argv[1].partition("/#token=")
        request = urllib.request.Request(base + "/ask", json.dumps({"question": "배치", "k": 3, "mode": "dense"}).encode(), {"Content-Type": "application/json", "Authorization": "Bearer " + token})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                failed += not json.load(answer).get("results")
        except Exception as exc:
            failed += 1
            print(exc, file=sys.stderr)
        asked += 1
except KeyboardInterrupt:
    pass
finally:
    print(asked, failed)
"""


def in_namespace_python(pid: int, script: str, *args: str) -> list[str]:
    from milvus_server import in_namespace

    return in_namespace(
        pid,
        sys.executable,
        "-c",
        "import signal; signal.signal(signal.SIGTERM, signal.default_int_handler)\n" + script,
        *args,
    )


def served_url(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    for line in process.stderr:
        if "serving" in line:
            return line.split(" on ")[1].split()[0]  # with its /#token=, which the scripts send
    raise AssertionError("serve did not start")


def fetch(pid: int, url: str, route: str) -> dict:
    """GET /status or POST /ask, from inside the namespace (serve listens on its 127.0.0.1)."""
    script = f"""
import json, sys, urllib.request, urllib.error
route = {route!r}
data = json.dumps({{"question": "배치", "k": 3, "mode": "dense"}}).encode() if route == "ask" else None
base, _, token = {url!r}.partition("/#token=")
headers = {{"Content-Type": "application/json", "Authorization": "Bearer " + token}}
request = urllib.request.Request(base + "/" + route, data, headers)
try:
    with urllib.request.urlopen(request, timeout=120) as answer:
        print(answer.read().decode())
except urllib.error.HTTPError as exc:
    print(exc.read().decode())
"""
    got = subprocess.run(in_namespace_python(pid, script), capture_output=True, text=True, timeout=180, check=False)
    return json.loads(got.stdout)


def test_a_second_database_is_refused_naming_the_server_version(server: int, repo_notes: Path, tmp_path: Path) -> None:
    """Milvus 2.3 keeps aliases in the default database whatever the client's (milvus-io/milvus#30368): a publish
    to db=team landed where readers could not find it, or failed with its collections left behind."""
    script = """
from pymilvus import MilvusClient
client = MilvusClient("http://127.0.0.1:19530", token="root:Milvus")
if "team" not in client.list_databases():
    client.create_database("team")
print(sorted(MilvusClient("http://127.0.0.1:19530", token="root:Milvus", db_name="team").list_collections()))
print(sorted(client.list_collections()))
"""

    def listed() -> str:
        script_run = in_namespace_python(server, script)
        return subprocess.run(script_run, capture_output=True, text=True, timeout=180, check=True).stdout

    before = listed()
    where = ["--notes", str(repo_notes), "--index", str(tmp_path / "index")]
    for args in (["index", "--encoders", "e5"], ["ask", "배치", "--no-server"], ["info"]):
        refused = run(server, *args, *where, "--store", f"{STORE}?db=team")
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "Milvus v2.3.5" in refused.stderr and "aliases only in the default database" in refused.stderr
    assert listed() == before  # nothing written, in either database


def embed_workers_in(pid: int) -> list[int]:
    """The pids of a Ray build's actors in the server's namespace: the processes Ray titles after their class."""
    namespace = os.readlink(f"/proc/{pid}/ns/net")
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and (entry / "cmdline").read_bytes().startswith(b"ray::EmbedWorker")
                and os.readlink(entry / "ns" / "net") == namespace
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_ray_build_whose_worker_is_killed_publishes_whole(server: int, repo_notes: Path, tmp_path: Path) -> None:
    """`index --ray local` in the server's namespace, two actors, one SIGKILLed mid-build: Ray restarts it and runs
    its step again, the build publishes under the lock and alias swap, and the store answers as a local build."""
    pytest.importorskip("ray")
    from helpers import kill_an_actor_mid_build

    store = f"{STORE[: STORE.rindex('/')]}/raykill"
    where = ["--notes", str(repo_notes), "--encoders", "e5", "--store", store, "--index", str(tmp_path / "staged")]
    build = subprocess.Popen(
        command(server, "index", *where, "--ray", "local", "--ray-workers", "2"),
        stderr=subprocess.PIPE,
        text=True,
        env=environment(OMP_NUM_THREADS="1", RAY_memory_monitor_refresh_ms="0", RAY_USAGE_STATS_ENABLED="0"),
    )
    killed_while_building, stderr = kill_an_actor_mid_build(build, lambda: embed_workers_in(server), 300, 900)
    assert killed_while_building and build.returncode == 0, stderr
    assert "published the index" in stderr and "Traceback" not in stderr
    local = ["--notes", str(repo_notes), "--encoders", "e5", "--index", str(tmp_path / "local")]
    assert run(server, "index", *local).returncode == 0
    questions = [row.split("\t")[0] for row in (REPO / "eval" / "notes.tsv").read_text(encoding="utf-8").splitlines()]
    for question in questions[1::13]:
        asked = ["ask", question, "--mode", "dense", "--json", "--no-server", "-k", "5"]
        assert [i for i, _ in ids(run(server, *asked, *where))] == [i for i, _ in ids(run(server, *asked, *local))]
