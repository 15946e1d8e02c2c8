"""The store contract on Milvus Lite: a published index answers as the local FAISS store does, builds swap whole
generations and embed only new text, and a bad store is one line with nothing live touched."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_build
from helpers import cli

from retriever import Retriever
from retriever.commands.doctor import diagnose
from retriever.milvus.store import MilvusStore

pytestmark = pytest.mark.slow  # Milvus Lite servers

pytest.importorskip("milvus_lite")

QUESTIONS = [
    "배치 사이즈는 어떻게 정하나요?",
    "캐글은 어떻게 시작하나요?",
    "How should I pick the learning rate?",
    "what to study for a data science career",
    "대회에서 앙상블은 언제 쓰나요",
]


def db(tmp_path: Path) -> str:
    (tmp_path / "store").mkdir(exist_ok=True)
    return str(tmp_path / "store" / "notes.db")


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path, repo_build: Path
) -> tuple[Retriever, Retriever]:
    """A copy of the repo's notes and their local index (built once per session), published to Milvus Lite; both
    stores' retrievers, with candidates cut to a few per channel so the stores' own nearest-neighbour and BM25
    searches pick them."""
    tmp_path = tmp_path_factory.mktemp("published")
    notes, index = copy_build(repo_build, tmp_path)
    local = Retriever(notes, index, cache_dir=model_cache)
    milvus = Retriever(notes, index, cache_dir=model_cache, store=db(tmp_path))
    milvus.index()  # the staged build is the local one: nothing is embedded again, it is only published
    for each in (local, milvus):
        each.ranking = replace(each.ranking, candidates=4)
    return local, milvus


def test_milvus_answers_as_the_local_store(published: tuple[Retriever, Retriever]) -> None:
    local, milvus = published
    assert isinstance(milvus.store, MilvusStore) and milvus.manifest().store == "milvus"
    for question in QUESTIONS:
        for mode in ("hybrid", "dense", "lexical"):
            want = local.ask(question, k=5, mode=mode)
            got = milvus.ask(question, k=5, mode=mode)
            assert [h.id for h in got] == [h.id for h in want], (question, mode)
            assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-4), (question, mode)
        want_q = local.similar(question, k=3)
        assert [h.id for h in milvus.similar(question, k=3)] == [h.id for h in want_q]


def test_explain_and_get_read_from_milvus(published: tuple[Retriever, Retriever]) -> None:
    local, milvus = published
    hit = milvus.ask(QUESTIONS[0], k=1, explain=True)[0]
    assert hit.explain == local.ask(QUESTIONS[0], k=1, explain=True)[0].explain
    assert milvus.get(hit.id)["text"] == hit.text
    assert milvus.info()["store"] == "milvus" and milvus.info()["index"].endswith("notes.db")
    findings = diagnose(milvus)
    assert [f.level for f in findings] == ["ok", "ok"] and "manifest checksum verified" in findings[0].message


def test_a_released_index_is_loaded_again_by_the_next_question(published: tuple[Retriever, Retriever]) -> None:
    """A restarted server loads its collections again in its own time, and an operator may release them: a
    question that meets them not loaded loads them, and is answered, instead of failing."""
    _, milvus = published
    want = [h.id for h in milvus.ask(QUESTIONS[1], k=3)]
    client = milvus.store.client
    for collection in client.list_collections():
        client.release_collection(collection)
    assert [h.id for h in milvus.ask(QUESTIONS[1], k=3)] == want


def test_rebuild_swaps_a_whole_generation_and_embeds_only_new_text(repo_notes: Path, tmp_path: Path) -> None:
    store = db(tmp_path)
    writer = Retriever(repo_notes, tmp_path / "index", models=["e5"], store=store)
    first = writer.index()
    reader = Retriever(repo_notes, tmp_path / "index", store=store)
    before = reader.store.generation()
    assert reader.ask("배치 사이즈", k=1)
    with (repo_notes / "kaggle.md").open("a", encoding="utf-8") as handle:
        handle.write("\n## 새 질문: 좋아하는 과일은?\n- 귤을 가장 좋아한다\n")
    second = writer.index()
    assert 0 < second.embedded < first.embedded / 10  # the new section's texts only
    assert reader.store.generation() != before
    assert reader.ask("좋아하는 과일은 무엇인가요?", k=1)[0].text.endswith("귤을 가장 좋아한다")  # the reader moved on
    writer.index(full=True)
    client = writer.store.client  # type: ignore[attr-defined]
    generations = {c.rsplit("__", 1)[0] for c in client.list_collections() if c.startswith("notes__g")}
    assert len(generations) == 2  # the live one and its predecessor; the first is gone
    assert not client.has_collection("notes__lock")


def test_a_publish_killed_half_way_leaves_the_live_index_answering(repo_notes: Path, tmp_path: Path) -> None:
    store, index = db(tmp_path), str(tmp_path / "index")
    common = ["--notes", str(repo_notes), "--index", index, "--store", store, "--encoders", "e5"]
    assert cli("index", *common).returncode == 0
    (repo_notes / "kaggle.md").write_text("## 배치\n- 바뀐 답\n", encoding="utf-8")
    for point in ("publishing", "alias"):
        killed = cli("index", *common, env={"RETRIEVER_FAILPOINT": point})
        assert killed.returncode == -9, killed.stderr
        answer = cli(
            "ask", "배치 사이즈", "--notes", str(repo_notes), "--index", index, "--store", store, "--no-server"
        )
        assert answer.returncode == 0 and "바뀐 답" not in answer.stdout, answer.stderr
    done = cli("index", *common)  # takes over the lock the killed build left, and clears its half-written collections
    assert done.returncode == 0, done.stderr
    answer = cli("ask", "배치 사이즈", "--notes", str(repo_notes), "--index", index, "--store", store, "--no-server")
    assert "바뀐 답" in answer.stdout


@pytest.mark.parametrize(
    ("store", "says"),
    [
        ("milvus://127.0.0.1:1/notes", "cannot reach Milvus store milvus://127.0.0.1:1/notes"),
        ("milvus://localhost/notes", "should look like milvus://HOST:PORT/NAME"),
        ("milvus://localhost:19530/bad-name", "letters, digits and single underscores"),
        ("redis://localhost/x", "unknown store"),
    ],
)
def test_a_bad_store_is_one_line(repo_notes: Path, store: str, says: str) -> None:
    result = cli("ask", "배치", "--notes", str(repo_notes), "--store", store, "--no-server")
    assert result.returncode == 1
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_empty_store_or_a_foreign_collection_is_one_line(repo_notes: Path, tmp_path: Path) -> None:
    store = db(tmp_path)
    empty = cli("ask", "배치", "--notes", str(repo_notes), "--store", store, "--no-server")
    assert empty.returncode == 1 and "no index in Milvus store" in empty.stderr and "--store" in empty.stderr
    assert not Path(store).exists()  # a reader made no empty database there
    holder = MilvusStore(store, Retriever(repo_notes).store)  # type: ignore[arg-type]
    client = holder.client
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    client.create_collection("someone_elses", schema=schema)
    client.create_alias("someone_elses", "notes")
    holder.close()
    foreign = cli("ask", "배치", "--notes", str(repo_notes), "--store", store, "--no-server")
    assert foreign.returncode == 1 and "holds no retriever index" in foreign.stderr, foreign.stderr


def test_a_store_built_by_another_model_refuses_the_question(repo_notes: Path, tmp_path: Path) -> None:
    store = db(tmp_path)
    built = Retriever(repo_notes, tmp_path / "index", models=["e5"], store=store)
    built.index()
    built.store.close()  # type: ignore[attr-defined]  (Milvus Lite: one process at a time)
    other = cli("ask", "배치", "--notes", str(repo_notes), "--store", store, "--encoders", "use", "--no-server")
    assert other.returncode == 1 and "was built with model" in other.stderr and "--store" in other.stderr


def test_a_store_that_lost_its_header_says_so_and_index_repairs_it_without_embedding(
    repo_notes: Path, tmp_path: Path
) -> None:
    """The header (format, versions, checksum) is a row of the meta collection, where a server keeps it across a
    restart, not a collection property (which a 2.3 server forgets). Lost anyway, a reader names what is missing,
    and the next `index` rewrites it from the published manifest: nothing embedded, the same generation live."""
    store, index = db(tmp_path), str(tmp_path / "index")
    common = ["--notes", str(repo_notes), "--index", index, "--store", store, "--encoders", "e5"]
    assert cli("index", *common).returncode == 0
    holder = MilvusStore(store, Retriever(repo_notes, Path(index)).store)  # type: ignore[arg-type]
    gen = holder.live_generation()
    assert not any(k.startswith("retriever.") for k in holder.client.describe_collection(gen).get("properties", {}))
    assert holder.header(gen)["sha256"] == hashlib.sha256(holder.blob(gen, "manifest")).hexdigest()
    holder.client.delete(gen, filter='kind == "header"')
    holder.close()
    ask = ["ask", "배치 사이즈", "--notes", str(repo_notes), "--index", index, "--store", store, "--no-server"]
    broken = cli(*ask)
    assert broken.returncode == 1 and f"{gen} lacks its header row" in broken.stderr, broken.stderr
    assert "retriever index" in broken.stderr and "--full" not in broken.stderr
    repaired = cli("index", *common, "--json")
    assert repaired.returncode == 0, repaired.stderr
    assert json.loads(repaired.stdout)["embedded"] == 0 and "repaired Milvus store" in repaired.stderr
    answer = cli(*ask)
    assert answer.returncode == 0 and answer.stdout.strip(), answer.stderr
    again = cli("index", *common)
    assert again.returncode == 0 and "repaired" not in again.stderr and "up to date" in again.stdout
    holder = MilvusStore(store, Retriever(repo_notes, Path(index)).store)  # type: ignore[arg-type]
    assert holder.live_generation() == gen
    holder.close()


def test_doctor_on_a_reader_machine_checks_the_store_not_a_local_folder(repo_notes: Path, tmp_path: Path) -> None:
    """A reader machine has no staged build: doctor checks what is published, and finds nothing to fix."""
    store = db(tmp_path)
    built = cli(
        "index", "--notes", str(repo_notes), "--index", str(tmp_path / "index"), "--store", store, "--encoders", "e5"
    )
    assert built.returncode == 0, built.stderr
    elsewhere = tmp_path / "reader-index"
    doctor = cli("doctor", "--notes", str(repo_notes), "--index", str(elsewhere), "--store", store, "--json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    findings = json.loads(doctor.stdout)
    assert findings["fix"] is None and {f["level"] for f in findings["findings"]} == {"ok"}, findings
    assert "this machine reads the store" in findings["findings"][-1]["message"]


def test_ask_against_a_silent_server_connects_once(repo_notes: Path) -> None:
    """A server that accepts connections and never answers: `ask` gives up after one gRPC connection, not two (each
    waits out the connect timeout); the one TLS probe that names a certificate problem may follow it."""
    listener = socket.create_server(("127.0.0.1", 0))
    openings: list[bytes] = []  # what each connection sent first: gRPC opens with the HTTP/2 preface

    def first_bytes(connection: socket.socket) -> None:
        connection.settimeout(10)
        with suppress(OSError):
            openings.append(connection.recv(24))

    def accept() -> None:
        with suppress(OSError):  # the listener closed
            while True:
                threading.Thread(target=first_bytes, args=(listener.accept()[0],), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    store = f"milvus://127.0.0.1:{listener.getsockname()[1]}/notes?connect_timeout=2"
    result = cli("ask", "배치", "--notes", str(repo_notes), "--store", store, "--no-server")
    listener.close()
    assert result.returncode == 1 and "cannot reach Milvus store" in result.stderr, result.stderr
    grpc = [o for o in openings if o.startswith(b"PRI * HTTP/2.0")]
    assert len(grpc) == 1 and len(openings) <= 2, openings


@pytest.mark.parametrize("command", ["serve", "mcp"])
def test_a_server_refuses_a_bad_store_before_it_announces_itself(command: str, tmp_path: Path) -> None:
    extra = ["--port", "0"] if command == "serve" else ["--http", "--port", "0"]
    result = cli(command, *extra, "--index", str(tmp_path / "index"), "--store", "milvus://u:secret@127.0.0.1:1/n")
    assert result.returncode == 1 and "must not carry credentials" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "secret" not in result.stderr, result.stderr
