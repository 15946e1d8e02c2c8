"""The web page of `retriever serve` in a real browser: Debian's chromium, headless, driven by its chromedriver.

Skipped where either is missing (.ci/run installs them with apt-get where it can). Selenium is handed both
binaries, so its manager never looks for, let alone downloads, a browser or a driver.
"""

from __future__ import annotations

import http.client
import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers import make_notes, serving, wait_for

from retriever import Retriever
from retriever.serving.client import Connection

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,  # a real browser and server
    pytest.mark.skipif(
        CHROMIUM is None or not CHROMEDRIVER.is_file(),
        reason="needs Debian's chromium and chromedriver: apt-get install chromium chromium-driver",
    ),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install -e '.[test]'")
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)
FILLER = "".join(f"- 회의 메모 {n}번: 다음 실험 일정과 담당자 정리\n" for n in range(1, 41))
GUIDE = (
    "---\ntitle: 학습 가이드\ntags: [딥러닝, 튜닝]\n---\n## 잡담\n"
    + FILLER
    + "\n## 드롭아웃 비율\n- 드롭아웃은 0.1에서 시작해서 과적합이면 올린다\n- 검증 손실이 벌어지면 <i>0.3</i>까지\n\n## 끝\n- 이상\n"
)
QUESTION = "드롭아웃은 얼마로 하나요?"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Connection]:
    notes = make_notes(tmp_path / "notes")
    (notes / "guide").mkdir()
    (notes / "guide" / "train.md").write_text(GUIDE, encoding="utf-8")
    index = tmp_path / "index"
    Retriever(notes, index, models=["e5"]).index()
    with serving(notes, index) as (server, _):
        yield server


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def test_a_korean_question_finds_its_passage_and_opens_its_note(served, browser, tmp_path: Path) -> None:
    browser.get(f"{served.url}/#token={served.token}")  # as `serve` prints it
    wait_for(lambda: "3 notes" in browser.find_element(By.ID, "status").text, 10)
    assert browser.current_url == served.url + "/"  # the secret is kept for the tab, out of the address bar
    assert not browser.find_element(By.ID, "collection-control").is_displayed()  # no collections: one folder

    box = browser.find_element(By.ID, "question")
    box.send_keys("드롭아웃은 ")
    # A real IME composition (Chrome's own): its Enter, which ends the syllable, must not search.
    browser.execute_cdp_cmd("Input.imeSetComposition", {"text": "얼", "selectionStart": 1, "selectionEnd": 1})
    for kind in ("rawKeyDown", "keyUp"):
        browser.execute_cdp_cmd("Input.dispatchKeyEvent", {"type": kind, "key": "Enter", "windowsVirtualKeyCode": 13})
    browser.execute_cdp_cmd("Input.insertText", {"text": "얼마로 하나요?"})  # commits the composition
    assert box.get_attribute("value") == QUESTION
    box.send_keys(Keys.ENTER)

    hits = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#results .hit"), 10)
    asks = "return performance.getEntriesByType('resource').filter(e => e.name.endsWith('/ask')).length"
    assert browser.execute_script(asks) == 1  # the Enter of the composition asked nothing
    top = hits[0]
    start = GUIDE.splitlines().index("## 드롭아웃 비율") + 1
    assert top.find_element(By.CLASS_NAME, "headings").text == "학습 가이드 › 드롭아웃 비율"
    assert top.find_element(By.CLASS_NAME, "where").text == f"guide/train.md:{start}"
    assert float(top.find_element(By.CLASS_NAME, "score").text) > 0
    assert [mark.text for mark in top.find_elements(By.TAG_NAME, "mark")] == ["드롭아웃"]
    assert [tag.text for tag in top.find_elements(By.CLASS_NAME, "tag")] == ["딥러닝", "튜닝"]
    assert "<i>0.3</i>" in top.text and not browser.find_elements(By.CSS_SELECTOR, "#results i")  # text, not markup

    top.click()
    rows = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#note .line"), 10)
    lines = GUIDE.splitlines()
    assert len(rows) == len(lines)
    passage = browser.find_elements(By.CSS_SELECTOR, "#note .line.passage")
    assert [int(row.get_attribute("data-line")) for row in passage] == list(range(start, start + 3))
    assert [row.find_element(By.CLASS_NAME, "tx").text for row in passage] == lines[start - 1 : start + 2]
    assert not browser.find_elements(By.CSS_SELECTOR, "#note i")
    assert browser.find_element(By.ID, "note-path").text == f"guide/train.md:{start}–{start + 2}"
    in_sight = """const box = document.getElementById('note').getBoundingClientRect();
        const row = arguments[0].getBoundingClientRect();
        return row.top >= box.top && row.bottom <= box.bottom && box.bottom <= innerHeight"""
    assert browser.execute_script(in_sight, passage[0])  # scrolled to: it is past the first screenful
    problems = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not problems  # no policy violation, no missing file, no script error
    screenshot = tmp_path / "page.png"
    assert browser.save_screenshot(str(screenshot))
    png = screenshot.read_bytes()
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000 and width >= 1000 and height >= 600

    box.clear()
    browser.find_element(By.ID, "go").click()  # the server's error, as one line; the old results are gone
    error = browser.find_element(By.ID, "error")
    wait_for(lambda: error.is_displayed(), 10)
    assert error.text == "the question is empty" and not browser.find_elements(By.CSS_SELECTOR, "#results .hit")
    box.send_keys(QUESTION)
    browser.find_element(By.ID, "k").send_keys("0")  # the browser lets it through; the server judges
    box.send_keys(Keys.ENTER)
    wait_for(lambda: '"k" must be an integer' in error.text, 10)


def test_the_request_carries_only_the_controls_filled_in(served, browser) -> None:
    browser.get(f"{served.url}/#token={served.token}")
    browser.find_element(By.ID, "question").send_keys(QUESTION)
    assert browser.execute_script("return request()") == {"question": QUESTION}
    browser.find_element(By.CSS_SELECTOR, ".filters summary").click()
    browser.find_element(By.ID, "path").send_keys("guide/*, *.txt")
    browser.find_element(By.ID, "tag").send_keys("딥러닝 ,")
    browser.execute_script("document.getElementById('since').value = '2026-01-02'")
    browser.find_element(By.ID, "k").send_keys("3")
    browser.find_element(By.CSS_SELECTOR, "#mode option[value=lexical]").click()
    assert browser.execute_script("return request()") == {
        "question": QUESTION,
        "k": 3,
        "mode": "lexical",
        "path": ["guide/*", "*.txt"],
        "tag": ["딥러닝"],
        "since": "2026-01-02",
    }
    browser.execute_script("document.getElementById('since').value = ''")
    browser.find_element(By.ID, "go").click()  # the server applies them: a glob that matches nothing is one line
    error = browser.find_element(By.ID, "error")
    wait_for(lambda: "'*.txt' matches no indexed note" in error.text, 10)
    browser.find_element(By.ID, "path").clear()
    browser.find_element(By.ID, "path").send_keys("guide/")
    browser.find_element(By.ID, "go").click()
    wait_for(lambda: not error.is_displayed(), 10)
    hits = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#results .hit"), 10)
    assert {hit.find_element(By.CLASS_NAME, "where").text.split(":")[0] for hit in hits} == {"guide/train.md"}


def test_the_page_is_refused_to_foreign_hosts_and_origins_and_sent_with_a_strict_policy(served) -> None:
    url = served.url
    port = urlsplit(url).port

    def get(path: str, **headers: str) -> tuple[http.client.HTTPResponse, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.putrequest("GET", path, skip_host=True)
        for name, value in {"Host": f"127.0.0.1:{port}", **headers}.items():
            connection.putheader(name, value)
        connection.endheaders()
        reply = connection.getresponse()
        return reply, reply.read()

    for headers in ({"Host": "evil.example"}, {"Origin": "http://evil.example"}):
        reply, body = get("/", **headers)
        assert reply.status == 403 and "refused" in json.loads(body)["error"]
    reply, body = get("/")
    assert reply.status == 200 and reply.getheader("Content-Type").startswith("text/html") and b"/app.js" in body
    assert "default-src 'self'" in reply.getheader("Content-Security-Policy")
    assert reply.getheader("X-Content-Type-Options") == "nosniff"
    reply, _ = get("/app.js", Origin=url)
    assert reply.status == 200 and reply.getheader("Content-Type").startswith("text/javascript")
    secret = f"Bearer {served.token}"
    for origin, status in ((url, 200), (url.replace("127.0.0.1", "localhost"), 200), ("http://localhost:1", 403)):
        reply, body = get("/status", Origin=origin, Authorization=secret)  # only the page's own origin may call
        assert reply.status == status, body
    reply, body = get("/status")  # the page itself needs no secret; what it asks does
    assert reply.status == 401 and list(json.loads(body)) == ["error"]
