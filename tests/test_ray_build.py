"""`index --ray`: a real Ray cluster of two processes (a head and a worker node, one CPU each) embeds a build that
is published to Milvus Lite, and the published index ranks as a local build of the same notes does."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from helpers import cli, kill_an_actor_mid_build, wait_for

from retriever import Retriever

needs_ray = pytest.mark.skipif(find_spec("ray") is None, reason="the ray extra is not installed")
needs_milvus_lite = pytest.mark.skipif(find_spec("milvus_lite") is None, reason="the milvus extra is not installed")

pytestmark = pytest.mark.slow  # a real two-node Ray cluster
# 30 of the dev set's questions on the repo's notes, every other row: Korean and English alike
QUESTIONS = [
    row.split("\t")[0] for row in (REPO / "eval" / "notes.tsv").read_text(encoding="utf-8").splitlines()[1::2]
][:30]
OBJECT_STORE = 80 * 1024 * 1024  # bytes per node: the steps in flight are a few MB


@dataclass(frozen=True)
class RayCluster:
    address: str
    sessions: tuple[int, ...]  # the nodes' session ids: every process of the cluster runs in one of them


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


MANUAL_BYTES = 40_000  # of the manual's pages, smallest first: several steps of texts per model, and every build
# here embeds them (the local one and two on Ray), so not the whole manual


def notes_of(folder: Path) -> Path:
    """The repo's notes and some of the manual's pages as notes of their own: enough chunks for several steps per
    model, so both nodes embed some."""
    shutil.copytree(REPO / "notes", folder)
    taken = 0
    for page in sorted((REPO / "docs").glob("*.md"), key=lambda page: page.stat().st_size):
        taken += page.stat().st_size
        if taken > MANUAL_BYTES:
            break
        shutil.copy(page, folder / f"docs-{page.name}")
    return folder


@pytest.fixture(scope="module")
def ray_cluster(model_cache: Path) -> Iterator[RayCluster]:
    """`ray start --head` and a second node joining it, each in its own process group, stopped by their ids. Ray's
        temp folder is a short one of its own: its nodes' unix sockets live under it, and a socket path has room for
        107 bytes; under a pytest-xdist worker's temp folder the second node's (`…/sockets/plasma_store.1`) ran past
        that, and the node never joined. The nodes are SIGKILLed at the end: SIGTERM made each `ray start --block` stop
    its processes one grace period at a time, 34 s for the two."""
    tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    address = f"127.0.0.1:{free_port()}"
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # the cluster's own, for every process
    for name, value in auth.items():
        os.environ[name] = value  # the CLI processes the tests start inherit it
    env = {
        **auth,
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "RETRIEVER_CACHE_DIR": str(model_cache),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray kills workers once the machine's memory is 95 % used, whoever uses it: on a shared test machine that
        # is other processes' doing, and the build's retries would not outlast them
        "RAY_memory_monitor_refresh_ms": "0",
    }
    ray = Path(sys.executable).with_name("ray")
    common = ["--num-cpus", "1", f"--object-store-memory={OBJECT_STORE}", "--block", "--disable-usage-stats"]
    head = [str(ray), "start", "--head", "--port", address.split(":")[1], "--include-dashboard=false"]
    head += ["--node-ip-address", "127.0.0.1", f"--temp-dir={tmp}", *common]
    nodes = [
        subprocess.Popen(head, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ]
    try:
        wait_for(lambda: listening(address) and ray_status(address, env), 120, "the Ray head")
        worker = [str(ray), "start", "--address", address, "--node-ip-address", "127.0.0.1", *common]
        nodes.append(
            subprocess.Popen(
                worker, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        wait_for(lambda: ray_status(address, env, nodes=2), 120, "the Ray worker node", every=1)
        yield RayCluster(address, tuple(node.pid for node in nodes))
    finally:
        for node in nodes:  # every process of the cluster is in one of these groups, and none keeps state past it
            os.killpg(node.pid, signal.SIGKILL)
        for node in nodes:
            node.wait(60)
        for name in auth:
            os.environ.pop(name, None)
        shutil.rmtree(tmp, ignore_errors=True)


def listening(address: str) -> bool:
    """Whether the head's port takes connections: a check that costs nothing, where each `ray status` is a Python
    process of its own (polled back to back, they took CPU from the very nodes they waited for)."""
    host, port = address.split(":")
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) == 0


def ray_status(address: str, env: dict[str, str], nodes: int = 1) -> bool:
    run = subprocess.run(
        [str(Path(sys.executable).with_name("ray")), "status", "--address", address],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return run.returncode == 0 and run.stdout.count("node_") >= nodes


def ray_index(tmp_path: Path, notes: Path, cluster: RayCluster) -> list[str]:
    """`retriever index` arguments that build notes with two of the cluster's workers into Milvus Lite under tmp_path."""
    (tmp_path / "store").mkdir()
    store = str(tmp_path / "store" / "notes.db")
    return ["index", "--notes", str(notes), "--index", str(tmp_path / "staged"), "--store", store] + [
        "--ray",
        cluster.address,
        "--ray-workers",
        "2",
    ]


@pytest.fixture(scope="module")
def local_build(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> tuple[Path, Retriever]:
    """The notes every Ray build here indexes, and a local build of them: the rankings a Ray build must give."""
    folder = tmp_path_factory.mktemp("local")
    notes = notes_of(folder / "notes")
    local = Retriever(notes, folder / "index", cache_dir=model_cache)
    local.index()
    return notes, local


def top5(retriever: Retriever, mode: str) -> list[list[str]]:
    return [[h.id for h in retriever.ask(question, k=5, mode=mode)] for question in QUESTIONS]


def codebook_name(index: Path) -> str:
    generation = index / (index / "CURRENT").read_text(encoding="utf-8").strip()
    return str(json.loads((generation / "manifest.json").read_text(encoding="utf-8"))["codebook"])


def codebook_of(index: Path) -> np.ndarray:
    """The live generation's token codebook, as stored."""
    name = codebook_name(index)
    assert name, "the build kept int8 tokens: too few to train a codebook on"
    return np.load(index / (index / "CURRENT").read_text(encoding="utf-8").strip() / f"{name}.npy", allow_pickle=False)


@needs_ray
@needs_milvus_lite
def test_a_build_sharded_over_ray_ranks_as_a_local_build(
    tmp_path: Path, model_cache: Path, ray_cluster: RayCluster, local_build: tuple[Path, Retriever]
) -> None:
    """The actors return token codes of a codebook trained first on a sample of steps; on notes this small the
    sample is every step, so the codebook is the very one the local build trained on all its tokens."""
    notes, local = local_build
    arguments = ray_index(tmp_path, notes, ray_cluster)
    store = arguments[arguments.index("--store") + 1]
    run = cli(*arguments, env={"PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    assert (
        f"embedding on the Ray cluster at {ray_cluster.address}" in run.stderr and "published the index" in run.stderr
    )
    assert "Traceback" not in run.stderr
    np.testing.assert_array_equal(codebook_of(tmp_path / "staged"), codebook_of(local.store.root))
    staged = Retriever(notes, tmp_path / "staged", cache_dir=model_cache)  # the Ray build's own files
    published = Retriever(notes, tmp_path / "staged", cache_dir=model_cache, store=store)
    assert list(published.manifest().chunks) == list(local.manifest().chunks)
    for mode in ("dense", "hybrid"):
        assert top5(staged, mode) == top5(local, mode), mode
        want, got = top5(local, mode), top5(published, mode)
        # Milvus's own searches order its candidates otherwise at times (test_milvus_store): its first hit is
        # among the local build's first five
        assert all(ids[0] in local_ids for ids, local_ids in zip(got, want)), mode
        print(
            f"{mode}: the Milvus Lite publish's top-5 equal a local build's for {sum(map(list.__eq__, got, want))} of 30"
        )


@needs_ray
def test_an_address_where_no_ray_listens_fails_in_one_line_before_any_work(tmp_path: Path) -> None:
    """Ray's own connect to a silent address retries for minutes: the build must give up in seconds and say why,
    before it reads a note or loads a model, with nothing written. A document note is parsed (and its text kept
    under the index) when the notes are read, and a model load fills the empty model cache: neither may happen."""
    notes = notes_of(tmp_path / "notes")
    (notes / "faq.html").write_text("<h1>FAQ</h1><p>Backups are kept for thirty days.</p>", encoding="utf-8")
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    address = f"127.0.0.1:{free_port()}"  # bound and released: nothing listens there
    index = tmp_path / "idx"
    index.mkdir()  # a folder the build did not make is left in place, with whatever the build wrote there
    run = cli(
        "index",
        "--notes",
        str(notes),
        "--index",
        str(index),
        "--ray",
        address,
        env={"PYTHONPATH": str(REPO), "RETRIEVER_CACHE_DIR": str(cache)},
    )
    assert run.returncode == 1, run.stderr
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and f"cannot join the Ray cluster at '{address}'" in errors[0], run.stderr
    assert "Traceback" not in run.stderr and not (index / "CURRENT").exists()
    assert not (index / "extracted").exists(), "the notes were read before the cluster was probed"
    assert list(cache.iterdir()) == [], "a model was loaded before the cluster was probed"


def embed_workers(cluster: RayCluster) -> list[int]:
    """The pids of the build's actors: the cluster's processes Ray titles after their class."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes()
            if (
                entry.name.isdigit()
                and title.startswith(b"ray::EmbedWorker")
                and os.getsid(int(entry.name)) in cluster.sessions
            ):
                pids.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return pids


@needs_ray
@needs_milvus_lite
def test_an_actor_killed_mid_build_costs_a_retry_not_the_build(
    tmp_path: Path, model_cache: Path, ray_cluster: RayCluster, local_build: tuple[Path, Retriever]
) -> None:
    """Ray restarts a killed actor and runs its step again: the build still publishes, and ranks as a local one."""
    notes = local_build[0]
    command = [sys.executable, "-m", "retriever", *ray_index(tmp_path, notes, ray_cluster)]
    build = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    killed_while_building, stderr = kill_an_actor_mid_build(build, lambda: embed_workers(ray_cluster), 120, 300)
    assert killed_while_building
    assert build.returncode == 0, stderr
    assert "published the index" in stderr and "Traceback" not in stderr
    notes, local = local_build
    staged = Retriever(notes, tmp_path / "staged", cache_dir=model_cache)
    assert top5(staged, "hybrid") == top5(local, "hybrid")


def test_ray_workers_without_ray_is_a_usage_error(tmp_path: Path) -> None:
    run = cli("index", "--notes", str(REPO / "notes"), "--index", str(tmp_path / "idx"), "--ray-workers", "2")
    assert run.returncode == 2 and "--ray-workers needs --ray" in run.stderr


def test_a_local_build_and_question_import_no_ray(tmp_path: Path, model_cache: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from retriever import Retriever\n"
        f"r = Retriever(Path({str(REPO / 'notes')!r}), Path({str(tmp_path / 'idx')!r}), cache_dir=Path({str(model_cache)!r}))\n"
        "r.index(); r.ask('캐글은 어떻게 시작하나요?', k=3)\n"
        "print('ray' in sys.modules)"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"
