"""Where a Milvus store is and how it is reached: credentials only from the environment (a URL carrying them is
refused without echoing them), every URL option checked in one line, and a server that never answers fails
within the timeout. No server is needed: these fail before one would be asked, or against a silent socket."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from helpers import cli

from retriever.errors import RetrieverError
from retriever.milvus.location import Location, shown


def test_a_url_with_credentials_is_refused_without_echoing_them(repo_notes: Path) -> None:
    for store in ("milvus://root:Secret9@127.0.0.1:19530/notes", "milvus://Secret9@127.0.0.1:19530/notes?db=x"):
        result = cli("ask", "배치", "--notes", str(repo_notes), "--store", store, "--no-server")
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Secret9" not in result.stderr + result.stdout
        assert "must not carry credentials" in result.stderr and "RETRIEVER_MILVUS_TOKEN" in result.stderr


def test_url_options_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until the handshake")
    where = Location.parse(f"milvus://h:19530/notes?db=team&timeout=5&connect_timeout=2.5&tls=1&ca={ca}")
    assert (where.uri, where.db, where.timeout, where.connect_timeout, where.ca) == (
        "https://h:19530",
        "team",
        5,
        2.5,
        ca,
    )
    assert Location.parse("milvus://h:19530/notes").uri == "http://h:19530"
    monkeypatch.setenv("RETRIEVER_MILVUS_DB", "from_env")
    monkeypatch.setenv("RETRIEVER_MILVUS_TIMEOUT", "7")
    assert Location.parse("milvus://h:19530/notes?db=from_url").db == "from_url"  # the URL's own value wins
    assert Location.parse("milvus://h:19530/notes").timeout == 7
    monkeypatch.setenv("RETRIEVER_MILVUS_USER", "reader")
    monkeypatch.setenv("RETRIEVER_MILVUS_PASSWORD", "pw")
    assert where.client_arguments()["user"] == "reader" and where.client_arguments()["secure"] is True
    monkeypatch.setenv("RETRIEVER_MILVUS_TOKEN", "reader:pw")
    with pytest.raises(RetrieverError, match="not both"):
        where.client_arguments()


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("?colour=blue", "unknown option 'colour'; known: db, tls"),
        ("?db=a&db=b", "option 'db' given twice"),
        ("?db=bad-name", "database name 'bad-name'"),
        ("?timeout=0", "timeout='0' should be seconds"),
        ("?connect_timeout=soon", "connect_timeout='soon' should be seconds"),
        ("?tls=maybe", "tls='maybe' should be 1 or 0"),
        ("?ca=/nonexistent/ca.pem", "names no readable file"),
        ("?server_name=a b", "is not a host name"),
    ],
)
def test_a_bad_option_is_one_line(query: str, says: str) -> None:
    with pytest.raises(RetrieverError, match=None) as caught:
        Location.parse(f"milvus://h:19530/notes{query}")
    assert says in str(caught.value)


def test_a_client_certificate_needs_its_key_and_a_ca(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(RetrieverError, match="needs both cert and key"):
        Location.parse(f"milvus://h:19530/notes?cert={cert}")
    with pytest.raises(RetrieverError, match="needs the server's CA"):
        Location.parse(f"milvus://h:19530/notes?cert={cert}&key={cert}")


def test_a_server_that_never_answers_fails_within_the_timeout(repo_notes: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel accepts connections; nothing ever answers them
    port = silent.getsockname()[1]
    try:
        started = time.monotonic()
        result = cli(
            "ask", "배치", "--notes", str(repo_notes), "--no-server",
            "--store", f"milvus://127.0.0.1:{port}/notes?connect_timeout=2&timeout=2",
        )  # fmt: skip
        took = time.monotonic() - started
    finally:
        silent.close()
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"cannot reach Milvus store milvus://127.0.0.1:{port}/notes" in result.stderr
    assert took < 12, took  # imports ~3 s, then the 2 s connect timeout; before: 21 s with no way to set it


SECRET = "Secret9"
SECRET_URLS = (
    f"milvus://127.0.0.1:19530/notes?token=root:{SECRET}",
    f"milvus://127.0.0.1:19530/notes?db=team&password={SECRET}",
    f"milvus://127.0.0.1:19530/notes?{SECRET}=1",
    f"milvus://127.0.0.1:19530/notes?timeout=oops&api_key={SECRET}",
    f"milvus://127.0.0.1:19530/notes#{SECRET}",
    f"milvus://u:{SECRET}@127.0.0.1:99999/notes",
    f"http://u:{SECRET}@127.0.0.1:19530/notes",
    f"milvus://[::1/notes?token={SECRET}",
)


def test_a_secret_anywhere_in_a_url_is_never_shown(repo_notes: Path, tmp_path: Path) -> None:
    """Every command that takes --store, in text and JSON, with the secret in each part a user may put one."""
    runs = [("ask", "배치", "--no-server"), ("info", "--json"), ("index",), ("doctor",), ("serve", "--port", "0")]
    for n, store in enumerate(SECRET_URLS):
        command = runs[n % len(runs)]
        result = cli(*command, "--notes", str(repo_notes), "--index", str(tmp_path / "i"), "--store", store)
        assert result.returncode != 0 and result.stderr.strip().splitlines()[-1].startswith("error:"), result.stderr
        assert SECRET not in result.stdout + result.stderr, (command, store, result.stderr)
        assert "Traceback" not in result.stderr


def test_a_store_is_shown_with_only_its_known_options() -> None:
    assert shown(f"milvus://h:1/x?db=team&tls=1&token={SECRET}&ca=/a b.pem") == (
        "milvus://h:1/x?db=team&tls=1&token=***&ca=/a%20b.pem"
    )
    assert shown(f"milvus://u:{SECRET}@h:1/x#{SECRET}") == "milvus://***@h:1/x#***"
    assert shown("/data/store.db") == "/data/store.db"
    where = Location.parse("milvus://h:19530/notes?db=team&timeout=5")
    assert where.label == "milvus://h:19530/notes?db=team&timeout=5"  # what progress, info, status and serve show
