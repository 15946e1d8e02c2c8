"""Documents' extracted text kept by the hash of their bytes: a rebuild parses only documents new or changed since,
`get` serves a document's text from the cache when it matches the file's bytes, and an entry that is damaged or
from another extractor is never served. Observed through the real command's `index --json` and through a parser
made unavailable to it, which only a kept text can stand in for."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from helpers import cli
from test_documents import HTML, write_pdf

from retriever.reading import extraction_cache
from retriever.reading.documents import DOCUMENT_SUFFIXES
from retriever.reading.extraction_cache import FOLDER, ExtractionCache, entry_text
from retriever.reading.notes import scan_notes


def make_folder(notes: Path) -> Path:
    notes.mkdir()
    write_pdf(notes / "report.pdf", ["Release notes: the cluster runs on three nodes.", "Warm-up lasts 500 steps."])
    (notes / "deploy.html").write_text(HTML, encoding="utf-8")
    (notes / "faq.html").write_text("<h1>FAQ</h1><p>Backups are kept for thirty days.</p>", encoding="utf-8")
    (notes / "old.html").write_text("<h1>Old</h1><p>The legacy cluster was retired in May.</p>", encoding="utf-8")
    (notes / "plain.md").write_text("# 메모\n회의는 매주 월요일 오전 10시.\n", encoding="utf-8")
    return notes


def kept(index: Path) -> set[str]:
    """The names in the cache folder, temp files and all."""
    folder = index / FOLDER
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def documents(notes: Path) -> set[str]:
    """The entries the cache holds once a build committed: one per document of the folder, by its bytes' hash."""
    return {
        hashlib.sha256(p.read_bytes()).hexdigest() + ".md" for p in notes.iterdir() if p.suffix in DOCUMENT_SUFFIXES
    }


def without_pdfium(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import pypdfium2` fails, as where it is not installed: a PDF read then is skipped."""
    shadow = tmp_path / "shadow"
    (shadow / "pypdfium2").mkdir(parents=True, exist_ok=True)
    (shadow / "pypdfium2" / "__init__.py").write_text(
        'raise ImportError("pypdfium2 is hidden here")\n', encoding="utf-8"
    )
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(shadow), os.environ.get("PYTHONPATH")]))}


def index_json(notes: Path, index: Path, env: dict[str, str] | None = None) -> dict:
    done = cli("index", "--json", "--notes", str(notes), "--index", str(index), "--encoders", "e5", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_rebuild_parses_only_new_or_changed_documents_and_get_serves_kept_text(
    tmp_path: Path, model_cache: Path
) -> None:
    notes, index = make_folder(tmp_path / "notes"), tmp_path / "index"
    first = index_json(notes, index)
    assert (first["notes"], first["extracted"], first["skipped"]) == (5, 4, [])
    assert kept(index) == documents(notes)

    # One document edited, one deleted; the PDF's parser is gone, so only its kept text can index it.
    (notes / "faq.html").write_text("<h1>FAQ</h1><p>Backups are kept for ninety days.</p>", encoding="utf-8")
    (notes / "old.html").unlink()
    hidden = without_pdfium(tmp_path)
    second = index_json(notes, index, hidden)
    assert (second["notes"], second["extracted"], second["skipped"]) == (4, 1, [])
    assert kept(index) == documents(notes)  # the deleted one's entry and the edited one's old entry are gone

    asked = cli("ask", "How many nodes does the cluster run on?", "--notes", str(notes), "--index", str(index),
                "--no-server", "--json", "-k", "1", env=hidden)  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["results"][0]["path"] == "report.pdf"

    # `get` serves the PDF's kept text, as the index read it, though its parser cannot run...
    text = next(note.text for note in scan_notes(notes).notes if note.path == "report.pdf")
    got = cli("get", "report.pdf", "--notes", str(notes), "--index", str(index), "--json", env=hidden)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["text"] == text and "three nodes" in text
    # ...and only while the file holds the bytes it was kept for: other bytes must be parsed.
    write_pdf(notes / "report.pdf", ["Release notes: the cluster now runs on five nodes."])
    got = cli("get", "report.pdf", "--notes", str(notes), "--index", str(index), "--json", env=hidden)
    assert got.returncode == 1 and "reading it needs pypdfium2" in got.stderr, got.stderr
    assert "five nodes" in json.loads(cli("get", "report.pdf", "--notes", str(notes), "--index", str(index),
                                          "--json").stdout)["text"]  # fmt: skip


def test_a_damaged_entry_is_parsed_again_never_served(tmp_path: Path, model_cache: Path) -> None:
    notes, index = make_folder(tmp_path / "notes"), tmp_path / "index"
    assert index_json(notes, index)["extracted"] == 4
    want = {note.path: note.text for note in scan_notes(notes).notes}
    entries = {p.name: p for p in (index / FOLDER).iterdir()}
    sha = {name: hashlib.sha256((notes / name).read_bytes()).hexdigest() + ".md" for name in want}
    altered = entries[sha["deploy.html"]]
    altered.write_bytes(altered.read_bytes().replace("롤백".encode(), "복구".encode()))  # same length, other text
    cut = entries[sha["faq.html"]]
    cut.write_bytes(cut.read_bytes()[:-5])
    (index / FOLDER / f"{sha['report.pdf']}").write_bytes(b"")  # what a crash may leave of a rename not synced

    got = cli("get", "deploy.html", "--notes", str(notes), "--index", str(index), "--json")
    assert got.returncode == 0 and json.loads(got.stdout)["text"] == want["deploy.html"], got.stderr

    again = index_json(notes, index)  # nothing changed in the folder: up to date, the damaged entries rewritten
    assert (again["up_to_date"], again["extracted"]) == (True, 3)
    assert kept(index) == documents(notes)
    cache = ExtractionCache.of(index, writes=False)
    for name, text in want.items():
        if name != "plain.md":
            assert cache.read(sha[name].removesuffix(".md")) == text


def test_another_extractor_parses_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries are served only to the extractor that wrote them: a bumped version or another parser library
    version parses every document again."""
    notes, index = make_folder(tmp_path / "notes"), tmp_path / "index"
    assert scan_notes(notes, None, ExtractionCache.of(index)).extracted == 4
    assert scan_notes(notes, None, ExtractionCache.of(index)).extracted == 0
    monkeypatch.setattr(extraction_cache, "EXTRACTOR_VERSION", extraction_cache.EXTRACTOR_VERSION + 1)
    assert scan_notes(notes, None, ExtractionCache.of(index)).extracted == 4
    assert scan_notes(notes, None, ExtractionCache.of(index)).extracted == 0
    installed = extraction_cache.parser_versions()
    monkeypatch.setattr(extraction_cache, "parser_versions", lambda: installed | {"pypdfium2": "0.1"})
    scan = scan_notes(notes, None, ExtractionCache.of(index))
    assert scan.extracted == 4 and len(scan.notes) == 5
    for entry in (index / FOLDER).iterdir():
        source = entry.name.removesuffix(".md")
        assert entry_text(source, entry.read_bytes()) is not None  # rewritten by this extractor


def test_a_read_never_writes_the_cache_and_a_scan_without_one_keeps_nothing(tmp_path: Path) -> None:
    notes, index = make_folder(tmp_path / "notes"), tmp_path / "index"
    assert scan_notes(notes).extracted == 4
    reader = ExtractionCache.of(index, writes=False)
    assert scan_notes(notes, None, reader).extracted == 4 and not index.exists()


def test_a_first_build_that_fails_after_parsing_leaves_no_index_folder(tmp_path: Path) -> None:
    notes, index, empty = make_folder(tmp_path / "notes"), tmp_path / "index", tmp_path / "empty"
    empty.mkdir()
    done = cli("index", "--notes", str(notes), "--index", str(index), "--encoders", str(empty))  # no model there
    assert done.returncode == 1 and "could not load model" in done.stderr, done.stderr
    assert not index.exists()  # the text its scan kept goes with the lock
