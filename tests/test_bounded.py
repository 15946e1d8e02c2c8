"""Every input costs bounded time and memory whatever its shape: globs of thousands of `*`, megabyte lines of every
heading spelling, deep HTML, zip bombs, huge folders, deep TOML. Inputs that took hours are run in a process of
their own with a generous timeout, so a return of the slow path fails the test instead of hanging the suite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import cli, make_notes, serving, wait_for

from retriever.errors import RetrieverError
from retriever.reading.globs import MAX_GLOB_CHARS, gitignore_spec
from retriever.reading.notes import scan_notes
from retriever.serving.client import Connection
from retriever.serving.records import ADDRESS_FILE

M = 1 << 20
BLANKS = " " * M
HOURS = 600  # seconds a child may take: what once took hours fails, what now takes a second passes


def child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=HOURS, check=False
    )
    assert result.returncode == 0, result.stderr
    return result


# `*` × n then `b` against a path without `b`: Python's re tried every way to cut the path in n (2 s at n = 8).
STARS = "*" * 3000 + "b"


def test_a_glob_of_thousands_of_stars_matches_at_once() -> None:
    found = child(
        "import sys; from retriever.reading.globs import gitignore_spec\n"
        "spec = gitignore_spec([sys.argv[1]], 'path')\n"
        "print(spec.match_file('journal/2024/some-long-note-name-aaaa.md'), spec.match_file('journal/b'))",
        STARS,
    )
    assert found.stdout.split() == ["False", "True"]


def test_a_path_filter_of_thousands_of_stars_answers_at_once() -> None:
    child(
        "import sys; from retriever.search.filters import NoteTable\n"
        "class Manifest: chunks = []\n"
        "table = NoteTable(Manifest())\n"
        "table.__dict__['paths'] = ['journal/2024/some-long-note-name-aaaa.md', 'journal/b']\n"
        "assert table.matching((sys.argv[1],)).tolist() == [False, True]",
        STARS,
    )


def test_exclude_globs_and_gitignore_lines_of_thousands_of_stars_are_walked_at_once(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    (notes / "deep/er").mkdir(parents=True)
    for name in ("keep-this-long-note-name.md", "deep/er/and-this-one-too.md", "deep/b"):
        (notes / name).write_text("# t\ntext\n", encoding="utf-8")
    (notes / "deep/.gitignore").write_text("*" * 3000 + "x\n", encoding="utf-8")
    found = child(
        "import sys; from pathlib import Path\n"
        "from retriever.reading.notes import Folder, Library, scan_notes\n"
        "scan = scan_notes(Library((Folder(Path(sys.argv[1]), exclude=(sys.argv[2],)),)))\n"
        "print(*sorted(n.path for n in scan.notes))",
        str(notes),
        "*" * 3000 + "y",
    )
    assert found.stdout.split() == ["deep/er/and-this-one-too.md", "keep-this-long-note-name.md"]


def test_gitignore_semantics_hold_under_the_linear_matcher() -> None:
    spec = gitignore_spec(["journal/", "*.tmp.md", "!keep.tmp.md", "/top.md", "a/**/b.md"], "test")
    assert [spec.match_file(p) for p in ("journal/x.md", "x/journal/y.md", "a.tmp.md", "keep.tmp.md")] == [
        True,
        True,
        True,
        False,
    ]
    assert [spec.match_file(p) for p in ("top.md", "sub/top.md", "a/x/y/b.md", "a/b.md")] == [True, False, True, True]


def test_a_glob_longer_than_any_path_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RetrieverError, match="longer than any path"):
        gitignore_spec(["*" * (MAX_GLOB_CHARS + 1)], "path")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# a\n", encoding="utf-8")
    (notes / ".gitignore").write_text("ok/\n" + "[a-z]" * 1000 + "\n", encoding="utf-8")
    with pytest.raises(RetrieverError, match=r"\.gitignore, line 2: a glob of 5000 characters"):
        scan_notes(notes)


def test_a_gitignore_over_its_bound_is_refused_whole_not_cut(tmp_path: Path) -> None:
    """Read up to its bound, it was cut mid-line: a last line cut to `*` left no note to index."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# a\n", encoding="utf-8")
    line = "generated/" + "x" * 80 + "*-cache\n"  # cut after its `*`, it ignores every note
    (notes / ".gitignore").write_text(line * ((M // len(line)) + 1), encoding="utf-8")
    with pytest.raises(RetrieverError, match=r"\.gitignore is over 1 MiB; a .gitignore is a few lines"):
        scan_notes(notes)


# Lines of a megabyte in every heading spelling, each with runs that quadratic patterns tried from every position.
SHAPES = {
    "atx trailing blanks": ("a.md", "# a" + BLANKS + "x\n\n# b" + BLANKS),
    "blanks after #": ("a.md", "#" + BLANKS + "x\n\n#" + BLANKS),
    "closing hashes": ("a.md", "# a" + BLANKS + "#x\n\n## a" + " \t#" * (M // 3) + "x\n\n# a" + BLANKS + "##"),
    "org": ("a.org", "* a" + BLANKS + "x\n\n* a" + BLANKS + ":" * M + "x\n\n" + "*" * M + "x\n\n* b" + BLANKS),
    "org title": ("a.org", "#+title: a" + BLANKS + "x" + BLANKS),
    "asciidoc": ("a.adoc", "== a" + BLANKS + "x\n\n== a" + " =" * (M // 2) + "x\n\n== b" + BLANKS),
    "rst": ("a.rst", "Title\n" + "=" * M + "x\n\n" + "~" * M),
    "statute": ("a.txt", "제1조 a" + BLANKS + "x\n\n제2조 a" + BLANKS + "\n\n제1장 a" + BLANKS + "\n\n제1" + "0" * M),
    "addendum": ("a.txt", "부" + BLANKS + "칙x" + " 부" * (M // 2)),
    "numbered sections": ("a.txt", "intro\n\n1. a" + BLANKS + "\n\n2." + "1" * M + "\n\n3.1" + ".1" * (M // 2)),
    "faq": ("a.txt", "Q. a" + BLANKS + "x\n\nQ" + "1" * M + "\n\nQ." + BLANKS),
    "contents": (
        "a.md",
        "# A\n# B\n# C\n\n- A"
        + BLANKS
        + "1x\n- B"
        + "." * M
        + "x\n- "
        + "1" * M
        + "x\n"
        + "[" * M
        + "\n"
        + "[a](" * (M // 4),
    ),
    "tags and code": ("a.md", "#" + "1" * M + " #" * (M // 2) + " `" * M),
    "setext": ("a.md", "Title\n" + "=" * M + "x\n\n" + "-" * M + " x"),
    "front matter": ("a.md", "---\ntitle: a" + BLANKS + "x\n---\ntext" + BLANKS),
}
CHUNK = """
import sys
from pathlib import Path
from retriever.reading.chunking import ChunkerSettings, chunk_note
from retriever.reading.notes import Note, note_text
rel, data = sys.argv[2], Path(sys.argv[1]).read_bytes()
chunks = chunk_note(Note(rel, note_text(rel, data)), ChunkerSettings(), lambda text: len(text.split()))
print(len(chunks))
"""


@pytest.mark.parametrize("shape", SHAPES)
def test_megabyte_lines_of_every_heading_shape_are_read_and_chunked_in_linear_time(tmp_path: Path, shape: str) -> None:
    name, text = SHAPES[shape]
    note = tmp_path / name
    note.write_text(text + "\n\nbody text\n", encoding="utf-8")
    assert int(child(CHUNK, str(note), name).stdout) >= 1


SCAN = """
import sys
from pathlib import Path
from retriever.reading.notes import scan_notes
scan = scan_notes(Path(sys.argv[1]))
print(sorted(n.path for n in scan.notes), dict(scan.skipped))
"""


def test_html_nested_deeper_than_a_browser_builds_is_skipped_before_parsing(tmp_path: Path) -> None:
    """100 000 nested <div> did not parse in 300 s: the parser's time is tags × depth."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "deep.html").write_text("<html><body>" + "<div>" * 100_000 + "x" + "</div>" * 100_000, encoding="utf-8")
    wide = "<p>para<li>item<td>cell<br><img src=x>" * 20_000  # many tags that nest nothing: read as usual
    (notes / "wide.html").write_text(f"<html><body><div><b>words</b>{wide}</div></body></html>", encoding="utf-8")
    found = child(SCAN, str(notes)).stdout
    assert "['wide.html'] {'deep.html': 'HTML nested over 512 elements deep (no browser nests deeper)'}" in found


def zip_bomb(path: Path, declared: int | None = None) -> None:
    """A DOCX whose document.xml inflates to 512 MiB from half a megabyte; `declared` forges its stated size."""
    import zipfile

    import docx

    docx.Document().save(str(path))
    with zipfile.ZipFile(path) as original:
        parts = {info.filename: original.read(info) for info in original.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb:
        for name, data in parts.items():
            if name != "word/document.xml":
                bomb.writestr(name, data)
        with bomb.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"<w:p/>" * (1 << 20)
            for _ in range(512 * (1 << 20) // len(block)):
                member.write(block)
    if declared is not None:  # the central directory's uncompressed size, the one zipfile reads, set to a lie
        data = bytearray(path.read_bytes())
        entry = data.rfind(b"PK\x01\x02", 0, data.rfind(b"word/document.xml") + 1)
        data[entry + 24 : entry + 28] = declared.to_bytes(4, "little")
        path.write_bytes(bytes(data))


def test_a_docx_zip_bomb_is_skipped_before_it_is_inflated(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    zip_bomb(notes / "bomb.docx")
    zip_bomb(notes / "liar.docx", declared=5000)
    (notes / "a.md").write_text("# a\ntext\n", encoding="utf-8")
    found = child(SCAN, str(notes)).stdout
    assert found.startswith("['a.md'] {")
    assert "'bomb.docx': 'a zip bomb: its word/document.xml inflates" in found
    assert (
        "'liar.docx': \"a damaged DOCX (Bad CRC-32" in found
    )  # inflated only to the 5 000 bytes it declares, then its CRC fails


def test_serve_stops_at_sigterm_while_a_question_runs_and_no_question_waits_behind_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A question held (as a slow one holds the index) kept a terminated server alive for as long as it ran, and
    every question sent meanwhile waited behind it."""
    notes, index, release = make_notes(tmp_path / "notes"), tmp_path / "index", tmp_path / "release"
    monkeypatch.setenv("RETRIEVER_HOLD", f"question:{release}")
    monkeypatch.setenv("RETRIEVER_QUESTION_WAIT", "1")
    try:
        with serving(notes, index) as (server, process):
            threading.Thread(target=busy, args=(server, "/ask", {"question": "held"}), daemon=True).start()
            wait_for(lambda: busy(server, "/status"))  # the held question has the index: status waited its bound
            refused = busy(
                server, "/ask", {"question": "배치사이즈"}
            )  # answered within its wait, not after the held one
            assert refused == "busy: a question before this one has run for over 1 s; ask again"
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)  # it ran until the question ended: here, never
            assert not (index / ADDRESS_FILE).exists()
    finally:
        release.touch()


def busy(server: Connection, route: str, payload: dict | None = None) -> str | None:
    """The server's one-line refusal, None when it answered (or went away)."""
    try:
        server.call(route, payload)
    except RetrieverError as exc:
        return str(exc)
    return None


def test_a_filesystem_root_or_the_home_folder_is_refused_as_a_notes_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    (home / "notes/a.md").write_text("# a\n", encoding="utf-8")
    env = {"HOME": str(home)}
    for folder, where in (("/", "the root of the file system"), (str(home), "your home folder")):
        result = cli("index", "--notes", folder, "--index", str(tmp_path / "index"), env=env)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"error: notes folder {folder} is {where}; name the folder your notes are in"
        ]
    config = home / "retriever.toml"
    config.write_text('[collections.all]\nfolder = "/"\n', encoding="utf-8")
    result = cli("index", "--index", str(tmp_path / "index"), env={**env, "RETRIEVER_CONFIG": str(config)})
    assert result.returncode == 1 and "is the root of the file system" in result.stderr
    assert not (tmp_path / "index").exists()


def test_a_folder_past_the_file_bound_is_refused_in_one_line(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    for i in range(30):
        (notes / f"d{i}").mkdir(parents=True)
        (notes / f"d{i}/n.md").write_text(f"# n{i}\ntext\n", encoding="utf-8")
    result = cli("index", "--notes", str(notes), "--index", str(tmp_path / "index"), env={"RETRIEVER_MAX_FILES": "40"})
    assert result.returncode == 1
    refusal = f"error: {notes} holds over 40 files and folders: is it the folder of your notes? "
    assert result.stderr.strip().splitlines() == [refusal + "(RETRIEVER_MAX_FILES raises the bound)"]


def test_a_long_walk_tells_how_many_files_it_has_seen(tmp_path: Path) -> None:
    """A walk held (as a huge or slow folder holds it) says how far it has got, on stderr, while it runs."""
    notes = make_notes(tmp_path / "notes")
    release = tmp_path / "release"
    process = subprocess.Popen(
        [sys.executable, "-m", "retriever", "index", "--notes", str(notes), "--index", str(tmp_path / "index")],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RETRIEVER_HOLD": f"walk:{release}"},
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.strip() == "reading the notes folder: 2 files seen so far"
    finally:
        release.touch()
        process.communicate(timeout=HOURS)


def test_a_deeply_nested_config_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "retriever.toml"
    config.write_text("exclude = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    result = cli("index", env={"RETRIEVER_CONFIG": str(config)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: config {config} nests values too deeply to read; it is a few lines of TOML"
    ]
