"""Opt-in: the Milvus store against a real Milvus server (PyPI `milvus==2.3.5`), started in its own network
namespace. Run with RETRIEVER_MILVUS_SERVER_TEST=1 as root after `pip install milvus==2.3.5`.

Milvus 2.3 has no sparse vectors (2.4 brought them), so there the index is published without the lexical channel:
dense questions must equal the local store's, hybrid ranks by the dense channels, lexical mode is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

pytestmark = pytest.mark.skipif(
    os.environ.get("RETRIEVER_MILVUS_SERVER_TEST") != "1", reason="opt-in: RETRIEVER_MILVUS_SERVER_TEST=1"
)
STORE = "milvus://127.0.0.1:19530/notes"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("milvus")
    from milvus_server import start, stop

    pid = start(tmp_path_factory.mktemp("milvus"))
    yield pid
    stop(pid)


def run(pid: int, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    from milvus_server import TOKEN, in_namespace

    command = in_namespace(pid, sys.executable, "-m", "retriever", *args)
    env = {**os.environ, "RETRIEVER_MILVUS_TOKEN": token or TOKEN}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, env=env)


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
