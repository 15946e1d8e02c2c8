"""Whole user sessions, drawn by hypothesis: real `retriever` processes on real notes in a temp folder, in orders no
example test tries (edit, rename, kill a build, switch retriever.toml, start and stop servers), with the index's
promises checked after every step:

- every committed generation verifies (`doctor --json` finds nothing broken) and, when up to date, answers
  (`ask --json --no-server`); commands that only read (`get`, `doctor`, an up-to-date `ask`) write no generation;
- no process prints a traceback or an `unexpected …` error;
- `index --json` embeds only texts the live generation does not hold (a rename or a copy embeds nothing), each once;
  it parses only documents whose bytes the previous generation did not hold, and leaves the extraction cache with
  whole entries of the live generation's documents only;
- a build killed (SIGKILL at a drawn moment or at a failpoint) or interrupted (SIGINT) leaves the previous
  generation live and whole;
- a background server answers as the process itself would, and once stopped leaves no process behind;
- `index` beside a running server of the same notes is built by that server (the client loads no model), which
  then answers from the new generation, as a fresh process does;
- answers equal those of a fresh build of a copy of the same notes (at teardown; `bench/soak.py` also every few
  steps).

Each step costs one to three processes that load a model (3-6 s here), so the CI run is a few short sessions;
`bench/soak.py` runs the same machine for as long as it is given.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any

import pytest
from helpers import interruptible, wait_for
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from retriever.config import library, read_config
from retriever.index.metatable import Strings, read_tables
from retriever.reading.documents import DOCUMENT_SUFFIXES
from retriever.reading.extraction_cache import entry_text
from retriever.reading.notes import Library

pytestmark = pytest.mark.slow  # whole sessions of real processes, each step loading a model
SCORE_TOLERANCE = 1e-4  # scores come as JSON rounded to 4 decimals, and a fresh build sums BM25 and z-scores over
# the same floats in another row order: equal answers may differ in the last printed digit, never by more
KOREAN_FONT = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")  # Debian's fonts-nanum
FOLDERS = ("a", "b")
COLLECTIONS = {"ka": "a", "kb": "b"}
QUESTIONS = ("배치 사이즈는 어떻게 정하나요?", "What learning rate for BERT?", "회의는 언제 해요?", "GPU memory")
# A process that has torch loaded (one that built the index, a server that built it at start) embeds questions
# with torch, one that has not with numpy: vectors at cosine ≥ 0.9999 whose z-scores differ by up to ~0.02 on
# these notes. Every process of a session asks with numpy, so what is compared is the index, not the engine.
SERVER_SECONDS = 240.0  # a background server loads models on a busy 2-core machine; a generous bound, not a timing

# Small Q&A sections: notes are drawn from these, so copies and renames carry texts the index already holds.
SECTIONS = (
    ("배치사이즈", ("GPU가 허용한 크게", "전체 데이터의 10%를 넘지 않게")),
    ("학습률은 어떻게 정하나요?", ("텍스트면 bert에 warm-up scheduler, lr=1e-4",)),
    ("How do I pick a learning rate?", ("Start at 1e-3 with Adam", "Use a warm-up for transformers")),
    ("회의는 언제 하나요?", ("매주 월요일 오전 10시", "안건은 전날까지 공유")),
    ("What GPU memory do I need?", ("16 GB fits a small model", "Use gradient checkpointing beyond that")),
    ("드롭아웃은 얼마로?", ("0.1부터 시작", "과적합이면 늘린다")),
)
KINDS = tuple(os.environ.get("SESSIONS_KINDS", "md,md,html,pdf,big").split(","))  # the soak may leave one out
BIG_SECTIONS = 64  # a note of ~23 KB: enough token vectors (> 4 096) that the index keeps them as codes of a codebook
WORDS = (  # noqa: SIM905 - a line of words reads better than a column of them
    "모델 데이터 학습 검증 배치 손실 정확도 과적합 앙상블 특성 전처리 스케줄러 옵티마이저 규제 드롭아웃 임베딩 토큰 "
    "문장 문서 검색 질문 답변 회의 일정 보고서 실험 결과 분석 지표 model data training validation batch loss accuracy "
    "ensemble feature scheduler optimizer dropout embedding token sentence document search meeting report"
).split()
NAMES = ("n1", "n2", "노트", "sub/n3")


@dataclass(frozen=True)
class Target:
    """How a command names its notes and index: retriever.toml's folders and index, or one folder and its own
    index. Paths are relative to the session folder, so a copy of it is built with the same arguments."""

    name: str
    args: tuple[str, ...]
    index: str

    def folders(self, collections: bool) -> tuple[str, ...]:
        if self.name == "config":
            return FOLDERS if collections else ("a",)
        return (self.name,)


TARGETS = (
    Target("config", (), "index"),
    Target("a", ("--notes", "a", "--index", "idx-a"), "idx-a"),
    Target("b", ("--notes", "b", "--index", "idx-b"), "idx-b"),
)


IGNORED = set(filter(None, os.environ.get("SESSIONS_IGNORE", "").split(",")))  # promises the soak counts, not fails
BROKEN: dict[str, int] = {}  # ignored promises: how often each was broken


def promise(name: str, kept: bool, message: str) -> None:
    """A promise of the product, by name, so that a soak which already found one broken (and reported it) can go
    on counting it while it looks for others (SESSIONS_IGNORE=name,…). CI ignores none."""
    if kept:
        return
    if name in IGNORED:
        BROKEN[name] = BROKEN.get(name, 0) + 1
        return
    raise AssertionError(f"[{name}] {message}")


def clean(result: subprocess.CompletedProcess[str] | tuple[int, str], what: str) -> None:
    """No route may show a traceback or an unexpected error, whatever else it says."""
    stderr = result[1] if isinstance(result, tuple) else result.stderr
    promise("no-traceback", "Traceback" not in stderr, f"{what}: traceback\n{stderr}")
    promise("no-unexpected-error", "unexpected" not in stderr, f"{what}: unexpected error\n{stderr}")


def one_line_error(result: subprocess.CompletedProcess[str], what: str) -> None:
    """Exit 1 with one line: an error, or "no results" (a collection without notes has none to give)."""
    lines = result.stderr.strip().splitlines()
    said = lines[-1] if lines else ""
    assert result.returncode == 1 and (said.startswith("error: ") or said == "no results"), f"{what}: {result}"


def render(kind: str, sections: list[int]) -> bytes:
    """A note of these sections as a person would have it: Markdown, an HTML page or a PDF."""
    chosen = [SECTIONS[i] for i in sections]
    if kind == "big":
        return big_note(sections)
    if kind == "md":
        return "".join(f"## {q}\n" + "".join(f"- {a}\n" for a in answers) + "\n" for q, answers in chosen).encode()
    if kind == "html":
        body = "".join(
            f"<h2>{q}</h2><ul>" + "".join(f"<li>{a}</li>" for a in answers) + "</ul>" for q, answers in chosen
        )
        return f"<html><head><title>t</title></head><body>{body}</body></html>".encode()
    return pdf_bytes(["\n".join([q, *(f"- {a}" for a in answers)]) for q, answers in chosen])


def big_note(seed: list[int]) -> bytes:
    """Many sections of words drawn from a seed: the one kind of note that makes the index train a codebook."""
    import random

    draw = random.Random(",".join(map(str, seed)))
    lines = []
    for number in range(BIG_SECTIONS):
        lines.append(f"## 주제 {number}: {draw.choice(WORDS)} {draw.choice(WORDS)}는 어떻게 하나요?")
        lines += ["- " + " ".join(draw.choice(WORDS) for _ in range(14)) for _ in range(4)]
        lines.append("")
    return "\n".join(lines).encode()


def pdf_bytes(pages: list[str]) -> bytes:
    import logging

    from fpdf import FPDF

    logging.getLogger("fontTools").setLevel(logging.ERROR)
    pdf = FPDF()
    if KOREAN_FONT.exists():
        pdf.add_font("nanum", fname=str(KOREAN_FONT))
        pdf.set_font("nanum", size=12)
    else:  # no Korean glyphs: the text is still a PDF's, only its Hangul is lost
        pdf.set_font("helvetica", size=12)
        pages = [page.encode("latin-1", "replace").decode("latin-1") for page in pages]
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def pids_in(root: Path) -> list[int]:
    """Every live retriever process working in this session's folder (servers inherit it from the ask that
    started them): what must be gone once the session has stopped its servers."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            command = (entry / "cmdline").read_bytes().split(b"\0")
            state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if cwd.startswith(str(root)) and b"retriever" in command and "zombie" not in state:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "zombie" not in state


def http_json(record: dict[str, Any], route: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """A recorded server's answer, asked with its secret as its own user's client asks."""
    headers = {"Authorization": f"Bearer {record['token']}", "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(record["url"] + route, data, headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except OSError:
        return None


def recorded_server(index: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((index / "server.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if alive(int(record.get("pid", 0))) else None


def stop_background_server(machine: SessionMachine, target: Target) -> int | None:
    """Stops the background server of this index as a user would, with `retriever stop INDEX`. Returns the pid
    that server.json named."""
    record = recorded_server(machine.root / target.index)
    stopped = machine.run("stop", str(machine.root / target.index))
    assert stopped.returncode == 0, stopped.stderr
    clean(stopped, "retriever stop")
    return None if record is None else int(record["pid"])


Generation = tuple[str, dict[str, Any]]  # a generation's folder name and its manifest's header, chunk hashes added


def document_hashes(generation: Generation | None) -> set[str]:
    """The SHA-256 of every document (PDF, HTML, …) a generation indexed."""
    files = generation[1]["files"] if generation else {}
    return {stamp["sha256"] for path, stamp in files.items() if Path(path).suffix.lower() in DOCUMENT_SUFFIXES}


def live_generation(index: Path) -> Generation | None:
    try:
        name = (index / "CURRENT").read_text().strip()
        header = json.loads((index / name / "manifest.json").read_text(encoding="utf-8"))
        chunks = read_tables(index / name, Strings.from_json(header["strings"])).chunks
        return name, header | {"chunk_hashes": [chunk.content_hash for chunk in chunks]}
    except (OSError, ValueError, KeyError):
        return None


def written(index: Path) -> tuple[str, ...]:
    """What a build leaves in an index folder: a command that only reads must leave it as it was."""
    if not index.is_dir():
        return ()
    current = (index / "CURRENT").read_text() if (index / "CURRENT").exists() else ""
    names = sorted(p.name for p in index.iterdir() if p.name.startswith(("gen-", ".tmp")))
    return (current, *names)


def ranked(answer: dict[str, Any]) -> list[tuple[str, float]]:
    return [(hit["id"], hit["score"]) for hit in answer["results"]]


def same_answers(got: list[tuple[str, float]], want: list[tuple[str, float]], what: str) -> None:
    """Equal ranks: scores equal within SCORE_TOLERANCE rank by rank, and ids equal except among results whose
    scores tie (copies of one passage), whose order is the index's row order; a tie reaching the k-th place may
    keep different members of the tie."""
    if len(got) != len(want) or any(abs(a - b) > SCORE_TOLERANCE for (_, a), (_, b) in zip(got, want)):
        return promise(what, False, f"scores differ\n{got}\n{want}")
    last = want[-1][1] if want else 0.0

    def groups(hits: list[tuple[str, float]]) -> list[set[str]]:
        out: list[list[tuple[str, float]]] = []
        for hit in hits:
            if out and abs(out[-1][-1][1] - hit[1]) <= SCORE_TOLERANCE:
                out[-1].append(hit)
            else:
                out.append([hit])
        return [{i for i, _ in g} for g in out if abs(g[-1][1] - last) > SCORE_TOLERANCE]

    promise(what, groups(got) == groups(want), f"other passages\n{got}\n{want}")


@dataclass
class Server:
    pid: int
    kind: str  # "background" (started by an ask) or "watch" (`serve --watch`)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None


@dataclass
class Counts:
    """What ran, for the soak's report."""

    examples: int = 0
    steps: int = 0
    processes: int = 0
    rules: dict[str, int] = field(default_factory=dict)
    rebuilds: list[tuple[str, int, int]] = field(default_factory=list)  # after an interrupted build: how, embedded, new


COUNTS = Counts()
FRESH_EVERY = int(os.environ.get("SESSIONS_FRESH_EVERY", "0"))  # 0: at teardown only
FRESH_ALL = os.environ.get("SESSIONS_FRESH_ALL") == "1"  # compare every built index at teardown, not the last one
VERBOSE = os.environ.get("SESSIONS_VERBOSE") == "1"  # each step and its time on stdout


def step(method: Callable[..., None]) -> Callable[..., None]:
    """Counts the step and remembers that one failed, so teardown stops servers without adding a second error."""

    @wraps(method)
    def run(self: SessionMachine, *args: Any, **kwargs: Any) -> None:
        COUNTS.steps += 1
        COUNTS.rules[method.__name__] = COUNTS.rules.get(method.__name__, 0) + 1
        began = time.monotonic()
        try:
            method(self, *args, **kwargs)
        except BaseException:
            self.failed = True
            raise
        finally:
            if VERBOSE:
                print(f"  {method.__name__}{kwargs}: {time.monotonic() - began:.1f} s", flush=True)
        self.since_fresh += 1
        if FRESH_EVERY and self.since_fresh >= FRESH_EVERY and self.last is not None:
            self.compare_with_fresh_build(self.last)

    return run


targets = st.sampled_from(TARGETS)
folders = st.sampled_from(FOLDERS)
questions = st.sampled_from(QUESTIONS)
contents = st.tuples(st.sampled_from(KINDS), st.lists(st.integers(0, len(SECTIONS) - 1), min_size=1, max_size=3))


class SessionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="session-"))
        self.collections = False
        self.servers: dict[str, Server] = {}
        self.interrupted: dict[str, str] = {}  # targets whose last build was cut short since their last commit: how
        self.answers: dict[tuple[str, str], list[tuple[str, float]]] = {}  # a server's last answer, to compare
        self.ids: dict[str, list[str]] = {}  # ids of a target's last results, for `get`
        self.failed = False
        self.since_fresh = 0
        self.last: Target | None = None
        self.used = False  # a command ran since the config was last switched
        self.own_registry = {"RETRIEVER_RUN_DIR": str(self.root / "run")}  # `status` and `stop` see this session's

    # -- the session's folder ----------------------------------------------------------------------------------
    @initialize(first=st.lists(st.tuples(folders, st.sampled_from(NAMES), contents), min_size=1, max_size=3))
    def start(self, first: list[tuple[str, str, tuple[str, list[int]]]]) -> None:
        COUNTS.examples += 1
        for folder in FOLDERS:
            (self.root / folder).mkdir()
        for folder, name, content in first:
            self.write(folder, name, content)
        self.write_config()

    def write(self, folder: str, name: str, content: tuple[str, list[int]]) -> None:
        kind, sections = content
        path = self.root / folder / f"{name}.{'md' if kind == 'big' else kind}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render(kind, sections))

    def write_config(self) -> None:
        lines = ['encoders = "e5"']  # e5 alone builds fastest; no flag, so `ask` still uses a server
        if self.collections:
            lines += [f'[collections.{name}]\nfolder = "{folder}"' for name, folder in COLLECTIONS.items()]
        else:
            lines.append('notes = "a"')
        (self.root / "retriever.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def notes(self) -> list[Path]:
        return sorted(p for f in FOLDERS for p in (self.root / f).rglob("*") if p.is_file())

    def has_notes(self, target: Target) -> bool:
        return any(any(p.is_file() for p in (self.root / f).rglob("*")) for f in target.folders(self.collections))

    def run(self, *args: str, daemon: bool = False, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        COUNTS.processes += 1
        self.used = True
        env = {**os.environ, **self.own_registry, "RETRIEVER_IDLE": "900"}
        if not daemon:
            env["RETRIEVER_NO_DAEMON"] = "1"
        else:
            env.pop("RETRIEVER_NO_DAEMON", None)
        result = subprocess.run(
            [sys.executable, "-m", "retriever", *args],
            cwd=cwd or self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        clean(result, " ".join(args))
        return result

    def changed(self, folder: str) -> None:
        """After a note changed: a watching server of these notes re-indexes; wait for it to be done, so that
        what follows meets a settled index."""
        for target in TARGETS:
            server = self.servers.get(target.name)
            if server is None or server.kind != "watch" or folder not in target.folders(self.collections):
                continue
            if not self.has_notes(target):
                continue
            record = recorded_server(self.root / target.index)
            assert record is not None, f"the watching server of {target.name} is gone"
            wait_for(
                lambda record=record: (s := http_json(record, "/status")) is not None and s.get("stale") is None,
                SERVER_SECONDS,
                f"the watching server re-indexes {target.name} after a change in {folder}",
            )

    # -- notes -------------------------------------------------------------------------------------------------
    @rule(folder=folders, name=st.sampled_from(NAMES), content=contents)
    @step
    def add_or_edit_note(self, folder: str, name: str, content: tuple[str, list[int]]) -> None:
        self.write(folder, name, content)
        self.changed(folder)

    @precondition(lambda self: self.notes())
    @rule(pick=st.integers(0, 99), folder=folders, name=st.sampled_from(NAMES), copy=st.booleans())
    @step
    def rename_or_copy_note(self, pick: int, folder: str, name: str, copy: bool) -> None:
        source = self.notes()[pick % len(self.notes())]
        destination = self.root / folder / f"{name}{source.suffix}"
        if destination == source:
            return
        destination.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copyfile if copy else os.replace)(source, destination)
        self.changed(source.relative_to(self.root).parts[0])
        self.changed(folder)

    @precondition(lambda self: self.notes())
    @rule(pick=st.integers(0, 99))
    @step
    def delete_note(self, pick: int) -> None:
        source = self.notes()[pick % len(self.notes())]
        source.unlink()
        self.changed(source.relative_to(self.root).parts[0])

    @precondition(
        lambda self: self.used and not any(s.kind == "watch" for n, s in self.servers.items() if n == "config")
    )
    @rule()
    @step
    def switch_config(self) -> None:
        """Single folder ⇄ collections, once a command has met the last setting. A watching server would keep
        indexing the old folders into the same index, as it was told; it is stopped first, as a person editing the
        file would."""
        self.collections = not self.collections
        self.used = False
        self.write_config()

    # -- commands ----------------------------------------------------------------------------------------------
    @rule(where=targets, full=st.booleans())
    @step
    def index(self, where: Target, full: bool) -> None:
        target = where
        self.last = target
        index = self.root / target.index
        before = live_generation(index)
        result = self.run("index", "--json", *target.args, *(["--full"] if full else []))
        if not self.has_notes(target):
            assert result.returncode in (0, 1), result
            if result.returncode == 1:
                one_line_error(result, "index without notes")
            return
        assert result.returncode == 0, result.stderr
        self.built(target, json.loads(result.stdout), before, full)
        self.check(target)

    def built(self, target: Target, report: dict[str, Any], before: Generation | None, full: bool) -> None:
        """What must hold after an `index` that succeeded, wherever it was built."""
        index = self.root / target.index
        after = live_generation(index)
        assert after is not None, "index succeeded but no generation is live"
        known = set() if full or before is None else set(before[1]["chunk_hashes"])
        rows = [key for key in after[1]["chunk_hashes"] if key not in known]
        texts = len(set(rows))
        if target.name in self.interrupted and not full:
            COUNTS.rebuilds.append((self.interrupted[target.name], report["embedded"], texts))
            assert report["embedded"] <= texts, f"{report} but only {texts} texts are new to the live generation"
        else:
            assert report["embedded"] <= len(rows), f"{report} but only {len(rows)} chunks are new"
            promise("embedded-once", report["embedded"] == texts, f"a text embedded twice: {report}, {texts} new texts")
        self.interrupted.pop(target.name, None)
        self.extraction_kept(index, report, before, after)

    def identity(self, target: Target) -> str:
        """What a server of the target's notes records as the notes it serves, with retriever.toml as it is now."""
        if target.name != "config":
            return Library.of(self.root / target.name).identity()
        where = self.root / "retriever.toml"
        found = library(read_config(where), where)
        assert found is not None
        return found.identity()

    def served(self) -> list[Target]:
        """Targets with notes and a running server of them, of the notes as retriever.toml names them now."""
        return [
            t
            for t in TARGETS
            if t.name in self.servers
            and self.has_notes(t)
            and (record := recorded_server(self.root / t.index)) is not None
            and record["notes"] == self.identity(t)
        ]

    @precondition(lambda self: bool(self.served()))
    @rule(pick=st.integers(0, 9), full=st.booleans(), question=questions)
    @step
    def index_through_server(self, pick: int, full: bool, question: str) -> None:
        """`index` beside a running server of the same notes and index: the server builds the update with the
        models it holds (the client loads none), stays the one recorded, and answers from the new generation at
        once, as an in-process ask of it does; the build keeps every promise of a local one."""
        served = self.served()
        target = served[pick % len(served)]
        self.last = target
        index = self.root / target.index
        record = recorded_server(index)
        assert record is not None
        before = live_generation(index)
        result = self.run("index", "--json", "--timings", *target.args, *(["--full"] if full else []))
        assert result.returncode == 0, result.stderr
        promise(
            "update-through-server",
            "model load" not in result.stderr and "server" in result.stderr,
            f"index loaded models beside the server of {target.name}\n{result.stderr}",
        )
        promise("same-server", recorded_server(index) == record, "the update replaced the server")
        self.built(target, json.loads(result.stdout), before, full)
        after = live_generation(index)
        status = http_json(record, "/status")
        assert status is not None and after is not None
        promise(
            "server-answers-update",
            status["stale"] is None and status["built_at"] == after[1]["created_at"],
            f"the server of {target.name} answers from {status['built_at']}, not the update's {after[1]['created_at']}",
        )
        answer = http_json(record, "/ask", {"question": question, "k": 5})
        assert answer is not None
        self.answers[(target.name, question)] = ranked(answer)
        self.check(target, question)

    @rule(where=targets, question=questions, through_server=st.booleans(), one_collection=st.booleans())
    @step
    def ask(self, where: Target, question: str, through_server: bool, one_collection: bool) -> None:
        target = where
        self.search("ask", target, question, through_server, one_collection)

    @rule(where=targets, question=questions, through_server=st.booleans())
    @step
    def similar(self, where: Target, question: str, through_server: bool) -> None:
        target = where
        self.search("similar", target, question, through_server, False)

    def search(self, command: str, target: Target, question: str, through_server: bool, one: bool) -> None:
        self.last = target
        where = ["-c", "ka"] if one and self.collections and target.name == "config" else []
        flags = [] if through_server else ["--no-server"]
        result = self.run(command, question, "--json", "-k", "5", *target.args, *where, *flags, daemon=through_server)
        if not self.has_notes(target) or (where and not self.has_notes(TARGETS[1])):
            assert result.returncode in (0, 1), result
            if result.returncode == 1:
                one_line_error(result, f"{command} without notes")
            return
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        self.ids[target.name] = [hit["id"] for hit in answer["results"]]
        self.interrupted.pop(target.name, None)  # it built what had changed
        if through_server:
            record = recorded_server(self.root / target.index)
            if record is not None and target.name not in self.servers:
                self.servers[target.name] = Server(int(record["pid"]), "background")
            if command == "ask" and not where:
                self.answers[(target.name, question)] = ranked(answer)
        self.check(target, question, answered=not through_server)

    @rule(where=targets, pick=st.integers(0, 99), whole=st.booleans())
    @step
    def get(self, where: Target, pick: int, whole: bool) -> None:
        target = where
        ids = self.ids.get(target.name) or []
        if not ids:
            return
        ref = ids[pick % len(ids)]
        ref = ref.split("#")[0] if whole else ref
        index = self.root / target.index
        before = written(index)
        result = self.run("get", ref, "--json", *target.args)
        assert result.returncode in (0, 1), result
        if result.returncode == 1:
            one_line_error(result, "get of a passage gone since")
        promise("get-reads-only", written(index) == before, f"get {ref} wrote the index: {before} → {written(index)}")

    @rule(
        where=targets,
        how=st.sampled_from(["embedding", "writing", "swap", "SIGKILL", "SIGINT"]),
        delay=st.floats(2, 12),
        full=st.booleans(),
    )
    @step
    def interrupt_build(self, where: Target, how: str, delay: float, full: bool) -> None:
        """A build killed like a power cut (at a failpoint, or after a drawn delay), or stopped by Ctrl-C: built in
        its own process (--no-server), since a client killed while a server builds leaves the server building."""
        target = where
        self.last = target
        index = self.root / target.index
        before = live_generation(index)
        env = {**os.environ, **self.own_registry, "RETRIEVER_NO_DAEMON": "1"}
        if how not in ("SIGKILL", "SIGINT"):
            env["RETRIEVER_FAILPOINT"] = how
        COUNTS.processes += 1
        with subprocess.Popen(
            [sys.executable, "-m", "retriever", "index", "--no-server", *target.args, *(["--full"] if full else [])],
            cwd=self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=interruptible,  # noqa: PLW1509 - this process starts no threads of its own
        ) as build:
            if how in ("SIGKILL", "SIGINT"):
                try:
                    build.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    build.send_signal(getattr(signal, how))
            _, stderr = build.communicate(timeout=600)
        clean((build.returncode, stderr), f"index interrupted by {how}")
        after = live_generation(index)
        if build.returncode == 0:
            self.interrupted.pop(target.name, None)
        elif not self.has_notes(target) and build.returncode == 1:
            pass
        else:
            assert build.returncode in (-9, 130), f"{how}: exit {build.returncode}\n{stderr}"
            if how == "SIGINT":
                assert stderr.strip().splitlines()[-1] == "interrupted", stderr
            assert before is None or after is not None, "an interrupted build lost the live index"
            self.interrupted[target.name] = how
        self.check(target)

    # -- servers -----------------------------------------------------------------------------------------------
    @precondition(lambda self: any(s.kind == "background" for s in self.servers.values()))
    @rule(pick=st.integers(0, 9))
    @step
    def stop_server(self, pick: int) -> None:
        self.stop_one("background", pick)

    def stop_one(self, kind: str, pick: int) -> None:
        """Stop one of the running servers of this kind, the pick-th (cyclically)."""
        running = [name for name, s in self.servers.items() if s.kind == kind]
        self.stop(next(t for t in TARGETS if t.name == running[pick % len(running)]))

    def stop(self, target: Target) -> None:
        server = self.servers.pop(target.name)
        index = self.root / target.index
        if server.kind == "watch":
            assert server.process is not None and server.log is not None
            server.process.terminate()
            server.process.wait(timeout=120)
            clean((server.process.returncode, server.log.read_text(errors="replace")), "serve --watch")
        else:
            stopped = stop_background_server(self, target)
            assert stopped in (server.pid, None), f"server.json names {stopped}, the server was {server.pid}"
            wait_for(lambda: not alive(server.pid), 120, f"the background server {server.pid} stops")
            log = index / "daemon.log"
            clean((0, log.read_text(errors="replace") if log.exists() else ""), "the background server")
        assert not alive(server.pid), f"server {server.pid} still runs"
        promise("stop-forgets-server", recorded_server(index) is None, "a stopped server is still recorded")

    def unserved(self) -> list[Target]:
        """Targets a watching server may start for: notes to serve, and no server of theirs yet."""
        return [
            t
            for t in TARGETS
            if t.name not in self.servers and self.has_notes(t) and recorded_server(self.root / t.index) is None
        ]

    @precondition(lambda self: bool(self.unserved()))  # drawn only where it starts one, not as a no-op
    @rule(pick=st.integers(0, 9))
    @step
    def serve_watch(self, pick: int) -> None:
        free = self.unserved()
        target = free[pick % len(free)]
        index = self.root / target.index
        self.last = target
        log = self.root / f"serve-{target.name}.log"
        COUNTS.processes += 1
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "retriever", "serve", "--watch", "--port", "0", *target.args],
                cwd=self.root,
                env={**os.environ, **self.own_registry, "RETRIEVER_NO_DAEMON": "1"},
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        self.servers[target.name] = Server(process.pid, "watch", process, log)

        def ready() -> bool:
            assert process.poll() is None, f"serve --watch ended: {log.read_text(errors='replace')}"
            record = recorded_server(index)
            health = record and record["pid"] == process.pid and http_json(record, "/health")
            return bool(health) and health["status"] == "ok"

        wait_for(ready, SERVER_SECONDS, "serve --watch answers")
        self.interrupted.pop(target.name, None)
        self.check(target)

    @precondition(lambda self: any(s.kind == "watch" for s in self.servers.values()))
    @rule(pick=st.integers(0, 9))
    @step
    def stop_watch(self, pick: int) -> None:
        self.stop_one("watch", pick)

    # -- what must hold ----------------------------------------------------------------------------------------
    def extraction_kept(
        self, index: Path, report: dict[str, Any], before: Generation | None, after: Generation
    ) -> None:
        """After a committed build the extraction cache holds whole entries of the live generation's documents only
        (never more: it is bounded by the folder), and the build parsed no document whose bytes it already held."""
        live, held = document_hashes(after), document_hashes(before)
        folder = index / "extracted"
        entries = {p.name.removesuffix(".md"): p for p in folder.iterdir()} if folder.is_dir() else {}
        promise("extraction-cache-bounded", set(entries) <= live, f"entries of no live document: {set(entries) - live}")
        damaged = [name for name, path in entries.items() if entry_text(name, path.read_bytes()) is None]
        promise("extraction-cache-whole", not damaged, f"damaged entries after a build: {damaged}")
        parsed = report["extracted"]
        promise("extraction-once", parsed <= len(live - held), f"{parsed} documents parsed, {len(live - held)} new")

    def check(self, target: Target, question: str = QUESTIONS[0], answered: bool = False) -> None:
        """The live generation verifies; when it is up to date it answers in-process, without writing anything,
        as a server of it answered (unless the step itself has just answered in-process)."""
        index = self.root / target.index
        if live_generation(index) is None or not self.has_notes(target):
            return
        before = written(index)
        doctor = self.run("doctor", "--json", *target.args)
        assert doctor.returncode in (0, 1), doctor
        report = json.loads(doctor.stdout)
        broken = [f for f in report["findings"] if f["level"] == "broken"]
        promise("generation-verifies", not broken, f"the live generation of {target.name} is broken: {broken}")
        promise("doctor-reads-only", written(index) == before, "doctor wrote the index")
        if doctor.returncode != 0 or answered:
            return  # stale: an in-process ask would build first, which the next step may do
        asked = self.run("ask", question, "--json", "-k", "5", "--no-server", *target.args)
        assert asked.returncode == 0, asked.stderr
        promise(
            "up-to-date-ask-reads-only", written(index) == before, "an ask of an up-to-date index wrote a generation"
        )
        served = self.answers.pop((target.name, question), None)
        if served is not None:
            same_answers(served, ranked(json.loads(asked.stdout)), "served-answers-alike")

    def compare_with_fresh_build(self, target: Target) -> None:
        """Answers equal those of a fresh index of a copy of the same notes, built from nothing."""
        self.since_fresh = 0
        if not self.has_notes(target) or live_generation(self.root / target.index) is None:
            return
        self.stop_watchers_of(target)
        mine = self.built_answer(target, self.root)
        manifest = live_generation(self.root / target.index)
        copy = Path(tempfile.mkdtemp(prefix="fresh-"))
        try:
            for folder in FOLDERS:
                shutil.copytree(self.root / folder, copy / folder)
            shutil.copy(self.root / "retriever.toml", copy)
            theirs = self.built_answer(target, copy)
            fresh = live_generation(copy / target.index)
        finally:
            shutil.rmtree(copy, ignore_errors=True)
        assert manifest is not None and fresh is not None
        if manifest[1]["codebook"] or fresh[1]["codebook"]:
            return  # token codes from a codebook trained on an earlier build rank by design a little differently
        same_answers(mine, theirs, "answers-as-fresh-build")

    def built_answer(self, target: Target, root: Path) -> list[tuple[str, float]]:
        """Brought up to date by `index`, then asked by a process that builds nothing."""
        built = self.run("index", *target.args, cwd=root)
        assert built.returncode == 0, built.stderr
        asked = self.run("ask", QUESTIONS[0], "--json", "-k", "5", "--no-server", *target.args, cwd=root)
        assert asked.returncode == 0, asked.stderr
        return ranked(json.loads(asked.stdout))

    def stop_watchers_of(self, target: Target) -> None:
        """A watching server would re-index the notes under the comparison; none of them runs meanwhile."""
        if target.name in self.servers and self.servers[target.name].kind == "watch":
            self.stop(target)

    def teardown(self) -> None:
        try:
            if not self.failed:
                chosen = [t for t in TARGETS if FRESH_ALL or t == self.last]
                for target in chosen:
                    self.compare_with_fresh_build(target)
        finally:
            for name in list(self.servers):
                try:
                    self.stop(next(t for t in TARGETS if t.name == name))
                except AssertionError:
                    if not self.failed:
                        raise
            listed = self.run("status", "--json")
            left = pids_in(self.root)
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            shutil.rmtree(self.root, ignore_errors=True)
            if not self.failed:
                assert not left, f"processes left after every server was stopped: {left}"
                assert json.loads(listed.stdout) == {"servers": []}, f"status lists stopped servers: {listed.stdout}"


SESSIONS = settings(  # the same few sessions on every run, so a change is judged on them; bench/soak.py draws anew
    max_examples=3,
    stateful_step_count=6,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


def test_sessions_keep_every_promise() -> None:
    run_state_machine_as_test(SessionMachine, settings=SESSIONS)


def test_an_update_through_a_background_server_keeps_every_promise() -> None:
    """The steps an update through a server needs, in order, so that every run has them whatever the drawn
    sessions hold: a background server started by an ask, an edit, then `index` and `index --full` through it."""
    machine = SessionMachine()
    try:
        machine.start([("a", "n1", ("md", [0, 1]))])
        machine.ask(where=TARGETS[1], question=QUESTIONS[0], through_server=True, one_collection=False)
        assert machine.served() == [TARGETS[1]]
        machine.add_or_edit_note(folder="a", name="n2", content=("md", [2, 3]))
        machine.index_through_server(pick=0, full=False, question=QUESTIONS[1])
        machine.add_or_edit_note(folder="a", name="n1", content=("big", [4]))
        machine.index_through_server(pick=0, full=True, question=QUESTIONS[0])
    except BaseException:
        machine.failed = True
        raise
    finally:
        machine.teardown()
