"""`retriever serve`: a JSON API on loopback over a warm Service, and the address file `ask` finds it by.

Plain `http.server` on purpose: a handful of JSON routes need no framework, and the standard library keeps the
server's start and the client's import cheap.

Loopback alone keeps out other machines, not web pages or local processes: a page can reach 127.0.0.1 through a DNS
name it rebinds there, or by posting a form across origins, and any process can open connections and never finish
them. So a request must name a loopback host (and origin, if it has one), a POST must be JSON (which a page on
another origin cannot send without a preflight this server never approves), a body's length is checked before it
is read, and connections are bounded in number and in how long they may stall.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .client import ADDRESS_FILE, remove_address
from .errors import RetrieverError
from .question import MAX_K
from .service import METHODS, Service

HOST = "127.0.0.1"  # never another interface: the notes are private
MAX_BODY = 1 << 20
MAX_CONNECTIONS = 32  # each holds a thread until its request is answered or times out
TIMEOUT_SECONDS = 10.0  # per read or write on a connection, so a half-sent request gives its thread back
LOOPBACK = r"(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?"
LOOPBACK_HOST = re.compile(LOOPBACK, re.IGNORECASE)
LOOPBACK_ORIGIN = re.compile(f"http://{LOOPBACK}", re.IGNORECASE)


class Rejected(Exception):
    """A request refused before it reaches the service: the status and the one-line reason the client gets."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    service: Service  # set on the subclass made per server
    timeout = TIMEOUT_SECONDS

    def do_GET(self) -> None:
        self.respond(self.route_get)

    def do_POST(self) -> None:
        self.respond(self.route_post)

    def route_get(self) -> dict[str, Any]:
        url = urlsplit(self.path)
        if url.path == "/health":
            return {"status": "ok", "pid": os.getpid()}
        if url.path == "/status":
            return self.service.status()
        if url.path == "/get":
            return self.service.get(parse_qs(url.query).get("id", [""])[0])
        raise Rejected(HTTPStatus.NOT_FOUND, f"no route {url.path}; try /health, /status, /ask, /similar, /get")

    def route_post(self) -> dict[str, Any]:
        method = urlsplit(self.path).path.strip("/")
        if method not in METHODS:
            raise Rejected(HTTPStatus.NOT_FOUND, f"no route /{method}; POST /ask or /similar")
        question, k, explain, mode = search_args(self.read_json())
        return self.service.search(method, question, k, explain, mode)

    def respond(self, route: Callable[[], dict[str, Any]]) -> None:
        """Every request gets one JSON answer, whatever went wrong: a dropped connection and a traceback on the
        server's stderr would tell the client nothing."""
        try:
            self.require_loopback()
            self.send(HTTPStatus.OK, route())
        except Rejected as exc:
            self.send(exc.status, {"error": str(exc)})
        except RetrieverError as exc:
            self.send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except (TimeoutError, ConnectionError):
            raise  # the client stalled or left: nobody to answer, and http.server closes the connection
        except Exception as exc:  # noqa: BLE001 - a bug must not take the server down; the client shows one line
            message = " ".join(f"unexpected {type(exc).__name__}: {exc}".split())
            self.send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": message})

    def require_loopback(self) -> None:
        """Refuse what a web page asks: by DNS rebinding it sends its own name as Host, and from any other site it
        sends that site as Origin."""
        host, origin = self.headers.get("Host", ""), self.headers.get("Origin")
        if not LOOPBACK_HOST.fullmatch(host):
            raise Rejected(HTTPStatus.FORBIDDEN, f"host {host!r} refused; ask {HOST} or localhost")
        if origin is not None and not LOOPBACK_ORIGIN.fullmatch(origin):
            raise Rejected(HTTPStatus.FORBIDDEN, f"origin {origin!r} refused; only loopback pages may call")

    def read_json(self) -> Any:
        """The body as JSON, read only once it is declared JSON and within MAX_BODY, so a forged length can make
        the server neither read more nor wait for it."""
        if self.headers.get_content_type() != "application/json":
            raise Rejected(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as Content-Type: application/json")
        declared = self.headers.get("Content-Length")
        if declared is None:
            raise Rejected(HTTPStatus.LENGTH_REQUIRED, "a POST needs a Content-Length")
        # digits only, as int() also takes "-1", "+5" and "1_0"; and few enough that int() takes them all
        if not re.fullmatch("[0-9]{1,18}", declared.strip()):
            raise Rejected(HTTPStatus.BAD_REQUEST, f"bad Content-Length {declared!r}")
        if int(declared) > MAX_BODY:
            raise Rejected(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY >> 20} MiB")
        try:
            return json.loads(self.rfile.read(int(declared)), parse_constant=refuse_constant)
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser's stack
            raise bad_request(f"the body is not JSON ({exc})") from None

    def send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: questions are private and stderr is for problems."""


def search_args(body: Any) -> tuple[str, int, bool, str | None]:
    """The question, k, explain and mode of a search, each checked for its JSON type (the service checks values)."""
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    question, k, explain, mode = body.get("question"), body.get("k", 5), body.get("explain", False), body.get("mode")
    if not isinstance(question, str):
        raise bad_request('"question" must be a string')
    if type(k) is not int or not 1 <= k <= MAX_K:  # not isinstance: true is an int too
        raise bad_request(f'"k" must be an integer from 1 to {MAX_K}')
    if not isinstance(explain, bool):
        raise bad_request('"explain" must be true or false')
    if mode is not None and not isinstance(mode, str):
        raise bad_request('"mode" must be a string')
    return question, k, explain, mode


def bad_request(problem: str) -> Rejected:
    return Rejected(HTTPStatus.BAD_REQUEST, f'bad request: {problem}; send {{"question": ..., "k": 5}}')


def refuse_constant(name: str) -> None:
    """NaN and Infinity are Python's extension of JSON, not JSON."""
    raise ValueError(f"{name} is not JSON")


class Server(ThreadingHTTPServer):
    """A thread per connection, but at most MAX_CONNECTIONS at once: a flood of half-sent requests must not take
    a thread each. Connections beyond are closed unanswered, and `ask` answers in-process, as with no server."""

    def __init__(self, port: int, handler: type[Handler]) -> None:
        super().__init__((HOST, port), handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.slots.acquire(blocking=False):
            super().process_request(request, client_address)
        else:
            self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """No traceback: every error in a request is answered as JSON, so what gets here is a client that hung up
        before its answer, which is no problem of the server's."""


def make_server(service: Service, port: int) -> Server:
    """Bound to the port but not yet serving, so a test can serve it in a thread over a stand-in service."""
    try:
        return Server(port, type("BoundHandler", (Handler,), {"service": service}))
    except OSError as exc:
        raise port_taken(port, exc) from exc


def serve(service: Service, port: int, on_ready: Callable[[str], None]) -> None:
    """Serve until interrupted or terminated; the address file under the index folder lives as long as the server."""
    server = make_server(service, port)
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
