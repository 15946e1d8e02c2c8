"""The CLI as a user drives it: arguments, stdin and environment variables in, one line out on bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from helpers import cli
from typer.testing import CliRunner

from retriever.cli import app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_index_reports_counts(runner: CliRunner, repo_notes: Path) -> None:
    result = runner.invoke(app, ["index", "--notes", str(repo_notes), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["notes"], report["chunks"], report["added"], report["removed"]) == (2, 16, 16, 0)
    again = json.loads(runner.invoke(app, ["index", "--notes", str(repo_notes), "--json"]).stdout)
    assert (again["added"], again["unchanged"]) == (0, 16)


def test_ask_json_is_one_object_with_the_documented_fields(runner: CliRunner, repo_built: Path) -> None:
    result = runner.invoke(
        app, ["ask", "배치 사이즈는 어떻게 정하나요?", "--notes", str(repo_built), "--json", "-k", "2"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["query"] == "배치 사이즈는 어떻게 정하나요?"
    assert [r["rank"] for r in payload["results"]] == [1, 2]
    first = payload["results"][0]
    fields = {"id", "rank", "score", "path", "heading", "headings", "tags", "start_line", "end_line", "text"}
    fields.add("highlights")
    assert set(first) == fields
    assert first["id"] == f"{first['path']}#{first['start_line']}"
    assert first["heading"] == "배치사이즈" and first["headings"] == ["배치사이즈"] and first["tags"] == []


@pytest.mark.parametrize("how", ["argument", "stdin", "dash"])
def test_question_from_argument_stdin_or_dash_gives_the_same_answer(
    runner: CliRunner, repo_built: Path, how: str
) -> None:
    question = "What learning rate for BERT?"
    args = {"argument": [question], "stdin": [], "dash": ["-"]}[how]
    result = runner.invoke(app, ["ask", *args, "--notes", str(repo_built), "--json"], input=question)
    assert result.exit_code == 0, result.output
    assert "hyperparameter" in json.loads(result.stdout)["results"][0]["heading"]


def test_environment_variables_double_as_options(runner: CliRunner, repo_built: Path, tmp_path: Path) -> None:
    shutil.move(tmp_path / "index", tmp_path / "elsewhere")
    env = {"RETRIEVER_NOTES": str(repo_built), "RETRIEVER_INDEX": str(tmp_path / "elsewhere")}
    result = runner.invoke(app, ["ask", "배치 사이즈", "--json", "-k", "1"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["heading"] == "배치사이즈"
    assert not (tmp_path / "index").exists()


def test_ask_on_a_missing_index_builds_it_and_says_so_on_stderr(runner: CliRunner, repo_notes: Path) -> None:
    result = runner.invoke(app, ["ask", "배치 사이즈", "--notes", str(repo_notes), "--json"])
    assert result.exit_code == 0, result.output
    assert "no index yet" in result.stderr
    json.loads(result.stdout)  # stdout holds the JSON and nothing else


def test_similar_json_carries_the_matched_question(runner: CliRunner, repo_built: Path) -> None:
    result = runner.invoke(
        app, ["similar", "팀으로 대회 나갈 때 역할은 어떻게 나눠요?", "--notes", str(repo_built), "--json"]
    )
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)["results"][0]
    assert first["question"] == "팀별로 competition을 할 때 업무분담을 어떻게 하는지"
    assert "앙상블" in first["text"]


def test_human_output_shows_score_location_heading_and_text(runner: CliRunner, repo_built: Path) -> None:
    result = runner.invoke(app, ["ask", "배치 사이즈", "--notes", str(repo_built), "-k", "1"])
    assert result.exit_code == 0, result.output
    assert "kaggle.md:56" in result.stdout
    assert "배치사이즈" in result.stdout
    assert "전체 데이터의 10%를 넘지 않게" in result.stdout


def test_info_describes_the_index(runner: CliRunner, repo_built: Path) -> None:
    payload = json.loads(runner.invoke(app, ["info", "--json"]).stdout)
    assert payload["model"] == "intfloat/multilingual-e5-small"
    assert (payload["notes"], payload["chunks"], payload["dim"]) == (2, 16, 384)
    assert payload["size_bytes"] > 16 * 384 * 4
    shown = runner.invoke(app, ["info"]).stdout  # for a person: fields, not Python's lists and dicts
    assert not re.search(r"[\[\]{}']", shown), shown
    models = [line.strip() for line in shown.splitlines() if "use-multilingual-v3" in line]
    assert len(models) == 1 and not models[0].startswith("models:")  # each model on a line of its own
    assert re.search(r"size_bytes: [0-9.]+ (KiB|MiB)$", shown, re.MULTILINE)


def test_results_carry_the_spans_of_the_question_words_and_the_screen_shows_them(
    runner: CliRunner, repo_built: Path
) -> None:
    asked = ["ask", "GPU가 허용하는 크기", "--notes", str(repo_built), "-k", "3"]
    hits = json.loads(runner.invoke(app, [*asked, "--json"]).stdout)["results"]
    words = {hit["text"][start:end] for hit in hits for start, end in hit["highlights"]}
    assert {"GPU", "허용"} <= words  # 허용하는 and 허용한 meet at their stem
    assert all(word.strip() and not word.startswith(" ") for word in words)
    dense = json.loads(runner.invoke(app, [*asked, "--json", "--mode", "dense"]).stdout)["results"]
    assert all(hit["highlights"] == [] for hit in dense)  # no Kiwi for a dense-only question
    shown = cli(*asked, "--no-server", env={"FORCE_COLOR": "1"}).stdout  # as a terminal shows it
    assert "\x1b[1;33mGPU\x1b[0m" in shown


def test_version_is_the_installed_one(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"retriever {metadata.version('retriever')}"


def test_get_prints_a_passage_or_a_note_by_the_id_results_carry(runner: CliRunner, repo_built: Path) -> None:
    first = json.loads(runner.invoke(app, ["ask", "배치 사이즈", "--notes", str(repo_built), "--json"]).stdout)[
        "results"
    ][0]
    passage = runner.invoke(app, ["get", first["id"], "--notes", str(repo_built)])
    assert passage.exit_code == 0 and passage.stdout.splitlines()[0].startswith(
        f"{first['path']}:{first['start_line']}"
    )
    assert first["text"] in passage.stdout
    as_json = json.loads(runner.invoke(app, ["get", first["id"], "--notes", str(repo_built), "--json"]).stdout)
    assert as_json["kind"] == "passage" and as_json["text"] == first["text"]
    note = runner.invoke(app, ["get", first["path"], "--notes", str(repo_built)])
    assert note.stdout.strip() == (repo_built / first["path"]).read_text(encoding="utf-8").strip()
    assert "no note" in one_line_error(runner.invoke(app, ["get", "nowhere.md#3", "--notes", str(repo_built)]))


@pytest.mark.parametrize("question", ["", "   \n\t "])
def test_empty_question_is_a_one_line_error(runner: CliRunner, repo_built: Path, question: str) -> None:
    assert "question is empty" in one_line_error(runner.invoke(app, ["ask", question, "--notes", str(repo_built)]))


def test_an_empty_question_starts_no_background_server(
    runner: CliRunner, repo_built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before a server is started for it: the start's notice made the error two lines, and the server
    stayed warm for ten minutes for nothing."""
    monkeypatch.delenv("RETRIEVER_NO_DAEMON")
    assert "question is empty" in one_line_error(runner.invoke(app, ["ask", " ", "--notes", str(repo_built)]))
    assert not list(repo_built.parent.rglob("server.json"))


def test_missing_notes_folder_is_a_one_line_error(runner: CliRunner, tmp_path: Path) -> None:
    line = one_line_error(runner.invoke(app, ["ask", "질문", "--notes", str(tmp_path / "nope")]))
    assert "notes folder not found" in line


def test_empty_notes_folder_is_a_one_line_error(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    line = one_line_error(runner.invoke(app, ["index", "--notes", str(tmp_path / "empty")]))
    assert "no notes to index" in line


def test_info_without_an_index_names_the_command_that_builds_one(runner: CliRunner, tmp_path: Path) -> None:
    assert "retriever index" in one_line_error(runner.invoke(app, ["info", "--index", str(tmp_path / "none")]))


def test_bad_k_is_a_usage_error(runner: CliRunner, repo_built: Path) -> None:
    result = runner.invoke(app, ["ask", "질문", "-k", "0", "--notes", str(repo_built)])
    assert result.exit_code == 2


def test_unreadable_notes_are_warned_about_by_name(runner: CliRunner, repo_notes: Path) -> None:
    (repo_notes / "broken.md").write_bytes(b"\xff\xfe\x00garbage")
    result = runner.invoke(app, ["index", "--notes", str(repo_notes)])
    assert result.exit_code == 0, result.output
    assert "skipped broken.md" in result.stderr


def test_progress_is_plain_lines_with_rate_when_stderr_is_no_terminal(runner: CliRunner, repo_notes: Path) -> None:
    result = runner.invoke(app, ["index", "--notes", str(repo_notes)])
    assert result.exit_code == 0, result.output
    assert "\r" not in result.stderr and "\x1b" not in result.stderr  # no redrawn bar in a log
    done = re.search(r"embedded: (\d+)/(\d+) texts of 16 chunks, [\d.]+ texts/s, about 0s left", result.stderr)
    assert done and done.group(1) == done.group(2), result.stderr


def test_quiet_index_prints_the_result_and_nothing_on_stderr(runner: CliRunner, repo_notes: Path) -> None:
    result = runner.invoke(app, ["index", "--notes", str(repo_notes), "--quiet"])
    assert result.exit_code == 0 and result.stderr == "" and "16 chunks" in result.stdout


def test_an_index_with_nothing_to_do_loads_no_model(runner: CliRunner, repo_built: Path) -> None:
    """In a fresh interpreter, since this one has the models loaded by other tests."""
    code = (
        "import sys; from typer.testing import CliRunner; from retriever.cli import app; "
        f"r = CliRunner().invoke(app, ['index', '--notes', {str(repo_built)!r}]); print(r.stdout); "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'kiwipiepy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd())
    assert "index is up to date: 2 notes, 16 chunks; nothing to embed, no model loaded" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_no_question_on_a_terminal_is_a_usage_error(tmp_path: Path) -> None:
    """Nothing to read on stdin when it is a terminal: typer's usage error, exit 2, not an `unexpected` error."""
    import pty

    parent, child = pty.openpty()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "retriever", "ask", "--index", str(tmp_path / "index")],
            stdin=child,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(parent)
        os.close(child)
    assert run.returncode == 2 and "give a QUESTION or pipe one on stdin" in run.stderr
    assert "unexpected" not in run.stderr and "Traceback" not in run.stderr


def test_a_question_without_ask_is_told_how_to_ask_it() -> None:
    run = cli("배치 사이즈는?")
    assert run.returncode == 2 and "No such command" in run.stderr
    assert 'did you mean: retriever ask "배치 사이즈는?"' in " ".join(re.sub(r"[│╭╮╰╯─]", " ", run.stderr).split())
    assert "Did you mean 'index'?" in cli("indx").stderr  # a near miss of a command still names the command


def test_get_without_an_index_says_how_to_build_one(runner: CliRunner, tmp_path: Path) -> None:
    line = one_line_error(runner.invoke(app, ["get", "a.md#1", "--index", str(tmp_path / "none")]))
    assert "no index at" in line and "retriever index" in line
