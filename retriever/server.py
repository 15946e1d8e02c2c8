"""`retriever serve`: a JSON API on loopback over a warm Service, and the address file `ask` finds it by.

Plain `http.server` on purpose: a handful of JSON routes need no framework, and the standard library keeps the
server's start and the client's import cheap.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .client import ADDRESS_FILE
from .errors import RetrieverError
from .service import METHODS, Service

HOST = "127.0.0.1"  # never another interface: the notes are private
MAX_BODY = 1 << 20


class Handler(BaseHTTPRequestHandler):
    service: Service  # set on the subclass made per server

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/health":
            self.answer(lambda: {"status": "ok", "pid": os.getpid()})
        elif url.path == "/status":
            self.answer(self.service.status)
        elif url.path == "/get":
            ref = parse_qs(url.query).get("id", [""])[0]
            self.answer(lambda: self.service.get(ref))
        else:
            self.send(
                HTTPStatus.NOT_FOUND, {"error": f"no route {url.path}; try /health, /status, /ask, /similar, /get"}
            )

    def do_POST(self) -> None:
        method = urlsplit(self.path).path.strip("/")
        if method not in METHODS:
            self.send(HTTPStatus.NOT_FOUND, {"error": f"no route /{method}; POST /ask or /similar"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise ValueError("request body over 1 MiB")
            body = json.loads(self.rfile.read(length) or b"{}")
            question = body["question"]
            if not isinstance(question, str):
                raise TypeError("question must be a string")
            args = (method, question, int(body.get("k", 5)), bool(body.get("explain", False)), body.get("mode"))
        except (ValueError, KeyError, TypeError) as exc:
            self.send(HTTPStatus.BAD_REQUEST, {"error": f'bad request: {exc}; send {{"question": ..., "k": 5}}'})
            return
        self.answer(lambda: self.service.search(*args))

    def answer(self, produce: Any) -> None:
        try:
            payload = produce()
        except RetrieverError as exc:
            self.send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - a bug must not take the server down; the client shows one line
            self.send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"unexpected {type(exc).__name__}: {exc}"})
        else:
            self.send(HTTPStatus.OK, payload)

    def send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: questions are private and stderr is for problems."""


def serve(service: Service, port: int, on_ready: Callable[[str], None]) -> None:
    """Serve until interrupted or terminated; the address file under the index folder lives as long as the server."""
    handler = type("BoundHandler", (Handler,), {"service": service})
    try:
        server = ThreadingHTTPServer((HOST, port), handler)
    except OSError as exc:
        raise port_taken(port, exc) from exc
    address = service.retriever.store.root / ADDRESS_FILE
    record = {
        "url": f"http://{HOST}:{server.server_address[1]}",
        "pid": os.getpid(),
        "notes": str(service.retriever.notes_dir.resolve()),
    }
    write_address(address, record)
    signal.signal(signal.SIGTERM, interrupt)
    on_ready(record["url"])
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        remove_address(address, os.getpid())


def port_taken(port: int, exc: OSError) -> RetrieverError:
    return RetrieverError(f"cannot listen on {HOST}:{port} ({exc.strerror}); pick another --port")


def require_free_port(port: int) -> None:
    """For servers whose framework reports a taken port in its own words: ours, before it tries."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise port_taken(port, exc) from exc


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops the server like Ctrl-C does, so the address file is removed either way."""
    raise KeyboardInterrupt


def write_address(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, path)


def remove_address(path: Path, pid: int) -> None:
    """Only our own record: another server may have taken the index over since."""
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass
