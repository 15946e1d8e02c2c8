"""HWP and HWPX notes, made in the test by jakal-hwpx (a library that writes both formats): Korean text, an outline
heading, a table and a footnote read as DOCX is read and found by `retriever ask`; a damaged file and a zip bomb
skipped with one line each while the rest is indexed."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from helpers import cli

from retriever.reading.documents import read_document

OUTLINE_1 = "2"  # the style a blank Hancom document numbers 개요 1: its first outline level


def write_hangul(path: Path, heading: str, body: str, table: list[list[str]], note: str, footnote: str) -> None:
    """A document as an office worker writes one: a heading, a paragraph, a table, a paragraph with a footnote."""
    from jakal_hwpx import HancomDocument

    document = HancomDocument.blank()
    document.append_paragraph(heading).style_id = OUTLINE_1
    document.append_paragraph(body)
    document.append_table(rows=len(table), cols=len(table[0]), cell_texts=table)
    document.append_paragraph(note)
    document.append_footnote(footnote)
    if path.suffix == ".hwp":
        document.write_to_hwp(str(path))
    else:
        document.write_to_hwpx(str(path))


def zip_bomb() -> bytes:
    """An HWPX whose section inflates 1000 times: 20 MB of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/hwp+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr("Contents/section0.xml", b"\0" * (20 << 20))
    return out.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("jakal_hwpx", reason="the test writes its HWP files with jakal-hwpx (the test extra)")
    notes = tmp_path_factory.mktemp("hangul") / "notes"
    notes.mkdir()
    write_hangul(
        notes / "backup.hwp",
        "백업 보관 정책",
        "백업 파일은 30일 동안 별도 스토리지에 보관한다.",
        [["서버", "역할"], ["db1", "주 데이터베이스"]],
        "복구 훈련은 분기마다 한다.",
        "훈련 결과는 정보보안팀장에게 서면으로 보고한다.",
    )
    write_hangul(
        notes / "budget.hwpx",
        "예산 집행 계획",
        "예산은 분기별로 나누어 집행한다.",
        [["항목", "금액"], ["장비 구입비", "4,500만 원"]],
        "집행 실적은 매월 공개한다.",
        "공개 대상은 계약 금액 500만 원 이상인 건이다.",
    )
    whole = (notes / "backup.hwp").read_bytes()
    (notes / "broken.hwp").write_bytes(whole[:2000])  # its directory and sections cut off
    (notes / "bomb.hwpx").write_bytes(zip_bomb())
    return notes


def test_headings_tables_and_footnotes_read_as_markdown(folder: Path) -> None:
    hwp = read_document(".hwp", (folder / "backup.hwp").read_bytes())
    assert hwp.startswith("# 백업 보관 정책\n\n백업 파일은 30일 동안 별도 스토리지에 보관한다.\n")
    assert "\n서버 | 역할\ndb1 | 주 데이터베이스\n" in hwp
    assert "[^1]: 훈련 결과는 정보보안팀장에게 서면으로 보고한다." in hwp
    hwpx = read_document(".hwpx", (folder / "budget.hwpx").read_bytes())
    assert "예산은 분기별로 나누어 집행한다." in hwpx and "\n장비 구입비 | 4,500만 원\n" in hwpx
    assert "[^1]: 공개 대상은 계약 금액 500만 원 이상인 건이다." in hwpx


def test_a_damaged_file_and_a_zip_bomb_each_say_why_in_one_line(folder: Path) -> None:
    with pytest.raises(Exception, match=r"^a damaged HWP \(") as damaged:
        read_document(".hwp", (folder / "broken.hwp").read_bytes())
    with pytest.raises(Exception, match=r"^a zip bomb: its Contents/section0.xml inflates \d+ times") as bomb:
        read_document(".hwpx", (folder / "bomb.hwpx").read_bytes())
    with pytest.raises(Exception, match=r"^a damaged HWPX \(not a zip\)"):
        read_document(".hwpx", (folder / "backup.hwp").read_bytes())
    for error in (damaged.value, bomb.value):
        assert "\n" not in str(error)


def ask(folder: Path, question: str) -> tuple[dict, str]:
    done = cli(
        "ask", question, "--notes", str(folder), "--index", str(folder.parent / "index"),
        "--no-server", "--mode", "dense", "-k", "1", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["results"][0], done.stderr


def test_ask_finds_text_tables_and_footnotes_and_skips_the_bad_files(folder: Path) -> None:
    hit, stderr = ask(folder, "훈련 결과는 누구에게 보고하나요?")  # the first ask builds the index
    assert (hit["path"], hit["headings"]) == ("backup.hwp", ["백업 보관 정책"])
    assert "정보보안팀장" in hit["text"]
    skipped = [line for line in stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 2, stderr
    assert any("broken.hwp" in line and "a damaged HWP" in line for line in skipped)
    assert any("bomb.hwpx" in line and "a zip bomb" in line for line in skipped)
    assert "Traceback" not in stderr
    hit, _ = ask(folder, "장비 구입비는 얼마인가요?")
    assert hit["path"] == "budget.hwpx" and "4,500만 원" in hit["text"]
