"""`retriever serve`: a JSON API on loopback over a warm Service, and the address file `ask` finds it by.

asyncio with h11 (the HTTP parser uvicorn uses), not http.server or uvicorn: a connection must cost no thread while
its client is slow, and every request must arrive whole within one deadline. http.server holds a thread per
connection and times out each read, so clients sending a byte every few seconds held every slot for as long as
they liked; uvicorn times out only the wait between requests (its issue #157), and a deadline there would reach
into its private protocol classes. A handful of JSON routes need no framework around the parser.

Loopback alone keeps out other machines, not web pages, other users or local processes: a page can reach 127.0.0.1
through a DNS name it rebinds there, or by posting a form across origins, any local user can connect, and any
process can open connections and never finish them. So every request but the page's static files must carry the
server's secret (Authorization: Bearer), which only its user can read (server.json is 0600; the web page gets it in
the URL `serve` prints); a client first asks /proof, answered without the secret, to learn that the port is this
server's before it sends the secret. A request must name a loopback host, and its origin, if it has one, must be
the page's own (scheme, host and port); a POST must be JSON (which a page on another origin cannot send without a
preflight this server never approves), a body's length is checked before it is read, and connections are bounded
in number and in how long they may take to send their request.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import resource
import secrets
import signal
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import h11

from ..errors import Busy, RetrieverError
from ..progress import Feed
from ..reading.notes import Library
from ..search.filters import FIELDS
from ..search.question import MAX_K, METHODS
from . import records, webpage
from .client import proof
from .loading import Loading

if TYPE_CHECKING:  # the service pulls in numpy and the models' code: loaded after the port is bound
    from .service import Service

T = TypeVar("T")

HOST = "127.0.0.1"  # never another interface: the notes are private
MAX_BODY = 1 << 20
MAX_HEAD = 16 << 10  # the request line and headers
REQUEST_SECONDS = 10.0  # to send the whole request, head and body, however it is cut into reads
ANSWER_SECONDS = 10.0  # to take the whole answer
MAX_RECEIVING = 4096  # connections still sending their request, from every client together
MAX_PER_CLIENT = 1024  # of those, from one address; on loopback every local process is one client
MAX_WAITING = 1024  # requests received and waiting for the service, which answers one at a time (~25 ms each)
MAX_WAITING_BYTES = 64 << 20  # and their bodies together
BACKLOG = 1024
BUSY = "busy: too many requests at once; ask again"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
LOOPBACK_HOST = re.compile(r"(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?", re.IGNORECASE)
NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")
UNAUTHORIZED = "this server answers only its own user: send the token in its server.json as Authorization: Bearer"


class Rejected(Exception):
    """A request refused before it reaches the service: the status and the one-line reason the client gets."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


async def receive(reader: asyncio.StreamReader, port: int) -> Request:
    """One whole request. Its head is checked before any body is read, so a forged length can make the server
    neither read more nor wait for it."""
    parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    head: Request | None = None
    body = bytearray()
    while True:
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError as exc:
            raise Rejected(HTTPStatus.BAD_REQUEST, f"bad request: {exc}") from None
        if event is h11.NEED_DATA:
            parser.receive_data(await reader.read(1 << 16))
        elif isinstance(event, h11.Request):
            headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
            head = Request(event.method.decode("latin-1"), event.target.decode("latin-1"), headers)
            admissible(head, port)
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            return Request(head.method, head.target, head.headers, bytes(body))
        else:  # the client closed before its request was whole
            raise ConnectionResetError("the request ended early")


def admissible(request: Request, port: int) -> None:
    """Refuse what a web page asks, and any body that is not JSON of a declared, bounded length. By DNS rebinding
    a page sends its own name as Host, and from any other site it sends that site as Origin: only this server's
    own page, at this port, may call (a page served on another loopback port is another site)."""
    host, origin = request.headers.get("host", ""), request.headers.get("origin")
    if not LOOPBACK_HOST.fullmatch(host):
        raise Rejected(HTTPStatus.FORBIDDEN, f"host {host!r} refused; ask {HOST} or localhost")
    if origin is not None and origin.lower() not in {f"http://{name}:{port}" for name in LOOPBACK_NAMES}:
        raise Rejected(HTTPStatus.FORBIDDEN, f"origin {origin!r} refused; only this server's own page may call")
    if request.method != "POST":
        return
    if request.content_type() != "application/json":
        raise Rejected(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as Content-Type: application/json")
    declared = request.headers.get("content-length")  # h11 has checked that it is digits
    if declared is None:
        raise Rejected(HTTPStatus.LENGTH_REQUIRED, "a POST needs a Content-Length")
    if int(declared) > MAX_BODY:
        raise Rejected(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY >> 20} MiB")


def route(loading: Loading[Service], request: Request) -> dict[str, Any]:
    """A question waits for the service to load; /status says it is loading instead."""
    url = urlsplit(request.target)
    if request.method == "POST" and url.path == "/index":
        full, encoders = index_args(read_json(request.body))
        return loading.wait().update(full, encoders)
    if request.method == "POST":
        method = url.path.strip("/")
        if method not in METHODS:
            raise Rejected(HTTPStatus.NOT_FOUND, f"no route /{method}; POST /ask, /similar or /index")
        body = read_json(request.body)
        question, k, explain, mode = search_args(body)
        service = loading.wait()
        return service.search(method, question, k, explain, mode, {f: body[f] for f in FIELDS if f in body})
    if request.method != "GET":
        raise Rejected(HTTPStatus.METHOD_NOT_ALLOWED, f"no method {request.method}; GET or POST")
    if url.path == "/status":
        ready = loading.ready
        return loading.health() if ready is None else ready.status()
    if url.path == "/get":
        return loading.wait().get(parse_qs(url.query).get("id", [""])[0])
    if url.path == "/update":
        query = parse_qs(url.query)
        number, wait = query.get("id", [""])[0], query.get("wait", ["0"])[0]
        if not number.isascii() or not number.isdigit() or len(number) > 18:
            raise Rejected(HTTPStatus.BAD_REQUEST, "bad request: /update?id= takes the number POST /index gave")
        if not wait.isascii() or not wait.isdigit() or len(wait) > 3:
            raise Rejected(HTTPStatus.BAD_REQUEST, "bad request: /update?wait= takes whole seconds")
        return loading.wait().updates.state(int(number), int(wait))
    raise Rejected(
        HTTPStatus.NOT_FOUND,
        f"no route {url.path}; try / (the web page), /health, /status, /ask, /similar, /get, /index, /update",
    )


def answer(loading: Loading[Service], request: Request) -> tuple[HTTPStatus, dict[str, Any]]:
    """Every request gets one JSON answer, whatever went wrong: a dropped connection and a traceback on the
    server's stderr would tell the client nothing."""
    try:
        return HTTPStatus.OK, route(loading, request)
    except Rejected as exc:
        return exc.status, {"error": str(exc)}
    except Busy as exc:
        return HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)}
    except RetrieverError as exc:
        return HTTPStatus.BAD_REQUEST, {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a bug must not take the server down; the client shows one line
        return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": " ".join(f"unexpected {type(exc).__name__}: {exc}".split())}


def read_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=refuse_constant)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser's stack
        raise bad_request(f"the body is not JSON ({exc})") from None


BODY_FIELDS = ("question", "k", "explain", "mode", *FIELDS)


def search_args(body: Any) -> tuple[str, int, bool, str | None]:
    """The question, k, explain and mode of a search, each checked for its JSON type (the service checks values)."""
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    unknown = [key for key in body if key not in BODY_FIELDS]
    if unknown:
        raise bad_request(f"unknown field {str(unknown[0])[:100]!r}; known: {', '.join(BODY_FIELDS)}")
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


MAX_ENCODERS = 16


def index_args(body: Any) -> tuple[bool, list[str] | None]:
    """An update's full flag and encoders (null: the index's own), each checked for its JSON type."""
    if not isinstance(body, dict) or not set(body) <= {"full", "encoders"}:
        raise Rejected(HTTPStatus.BAD_REQUEST, 'bad request: send {"full": false, "encoders": null}')
    full, encoders = body.get("full", False), body.get("encoders")
    if not isinstance(full, bool):
        raise Rejected(HTTPStatus.BAD_REQUEST, 'bad request: "full" must be true or false')
    if encoders is not None and not (
        isinstance(encoders, list)
        and 0 < len(encoders) <= MAX_ENCODERS
        and all(isinstance(name, str) and 0 < len(name) <= 1000 for name in encoders)
    ):
        raise Rejected(HTTPStatus.BAD_REQUEST, f'bad request: "encoders" must be null or 1-{MAX_ENCODERS} names')
    return full, encoders


def bad_request(problem: str) -> Rejected:
    return Rejected(HTTPStatus.BAD_REQUEST, f'bad request: {problem}; send {{"question": ..., "k": 5}}')


def refuse_constant(name: str) -> None:
    """NaN and Infinity are Python's extension of JSON, not JSON."""
    raise ValueError(f"{name} is not JSON")


def response(status: HTTPStatus, payload: dict[str, Any]) -> bytes:
    return message(status, "application/json; charset=utf-8", json.dumps(payload, ensure_ascii=False).encode())


def page(found: webpage.Asset) -> bytes:
    return message(HTTPStatus.OK, found.content_type, found.body, webpage.HEADERS)


def message(status: HTTPStatus, content_type: str, data: bytes, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """One answer per connection, then close: the client opens one per request, and a kept-alive connection would
    be one more a slow client could hold. nosniff: a browser takes each answer as the type it is sent as."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers)
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: {content_type}\r\nContent-Length: {len(data)}\r\n"
        f"X-Content-Type-Options: nosniff\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode() + data


class Server:
    """Connections cost a coroutine, not a thread, and each has REQUEST_SECONDS to send its request. Those still
    sending are bounded per client and in all; at a bound the oldest of them is closed, so a flood of slow or
    idle connections can delay a real request by one accept, never lock it out."""

    def __init__(self, loading: Loading[Service], listener: socket.socket, token: str, feed: Feed | None) -> None:
        self.loading = loading
        self.listener = listener
        self.token = token
        self.feed = feed
        self.port: int = listener.getsockname()[1]
        self.receiving: OrderedDict[asyncio.Task[None], str] = OrderedDict()  # oldest first, with their client
        self.waiting = self.waiting_bytes = 0
        self.evicted: set[asyncio.Task[None]] = set()
        self.stopped: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.open = 0  # requests being answered, but for those about the server itself (/health, /progress…)
        self.active = time.monotonic()  # when the last of them was answered

    async def run(self, idle: float = 0) -> None:
        """Serve until stop() is called, the load fails, or (idle > 0) nobody asked anything for `idle` seconds."""
        self.loop, self.stopped = asyncio.get_running_loop(), asyncio.Event()
        if self.loading.state == "failed":  # before the loop was there to be stopped
            return
        self.loop.set_exception_handler(lambda loop, context: None)  # a reset client is no problem of the server's
        server = await asyncio.start_server(self.connected, sock=self.listener, backlog=BACKLOG, limit=MAX_HEAD)
        async with server:
            watch = asyncio.create_task(self.stop_when_idle(idle)) if idle > 0 else None
            await self.stopped.wait()
            server.close()
            for task in [*self.receiving, *([watch] if watch else [])]:
                task.cancel()
        self.loading.close()  # a question still waiting for the load ends now, not when the load does

    async def stop_when_idle(self, seconds: float) -> None:
        """Idle time counts from the end of the load, so a long first build is not mistaken for idleness."""
        while True:
            if self.busy():
                self.active = time.monotonic()
            quiet = time.monotonic() - self.active
            if quiet >= seconds:
                self.stop()
                return
            await asyncio.sleep(min(seconds - quiet, 1.0))

    def busy(self) -> bool:
        """Loading, answering, or building an update a client sent (which it waits for, or has left to finish)."""
        service = self.loading.ready
        return self.loading.state == "loading" or bool(self.open) or (service is not None and service.updates.busy)

    def stop(self) -> None:
        """From any thread or a signal handler."""
        if self.loop is not None and self.stopped is not None:
            self.loop.call_soon_threadsafe(self.stopped.set)

    async def connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.admit(task, str(writer.get_extra_info("peername", ("?",))[0]))
        try:
            await self.exchange(reader, writer, task)
        except asyncio.CancelledError:
            if task in self.evicted:  # told so, in case it was a real client in a burst
                writer.write(response(HTTPStatus.SERVICE_UNAVAILABLE, {"error": BUSY}))
                writer.close()
        except (TimeoutError, ConnectionError):
            pass  # the client stalled or left: nobody to answer
        finally:
            self.receiving.pop(task, None)
            self.evicted.discard(task)
            if not writer.is_closing():
                writer.transport.abort()

    def admit(self, task: asyncio.Task[None], client: str) -> None:
        """Make room for this connection by closing the oldest still sending: first from the same client."""
        same = [other for other, who in self.receiving.items() if who == client]
        if len(same) >= MAX_PER_CLIENT:
            self.evict(same[0])
        elif len(self.receiving) >= MAX_RECEIVING:
            self.evict(next(iter(self.receiving)))
        self.receiving[task] = client

    def evict(self, task: asyncio.Task[None]) -> None:
        del self.receiving[task]
        self.evicted.add(task)
        task.cancel()

    async def exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, task: asyncio.Task) -> None:
        try:
            request = await asyncio.wait_for(receive(reader, self.port), REQUEST_SECONDS)
        except Rejected as exc:
            reply = response(exc.status, {"error": str(exc)})
        else:
            del self.receiving[task]  # received whole: the service's queue bounds it from here
            reply = await self.answered(request)
        writer.transport.set_write_buffer_limits(0)  # so drain() returns once all of it is written
        writer.write(reply)
        await asyncio.wait_for(writer.drain(), ANSWER_SECONDS)
        writer.close()

    async def answered(self, request: Request) -> bytes:
        """The page's files and /proof tell nothing and need no secret; all else does. What is about the server
        itself is answered here at once, beside a load, and is not a request that keeps it from idling."""
        url = urlsplit(request.target)
        if request.method == "GET" and url.path == "/proof":
            return response(*prove(self.token, url.query))
        if request.method == "GET" and (found := webpage.asset(url.path)) is not None:
            return page(found)
        if not self.authorized(request):
            return response(HTTPStatus.UNAUTHORIZED, {"error": UNAUTHORIZED})
        if request.method == "GET" and url.path in ("/health", "/progress"):
            return response(HTTPStatus.OK, self.about(url.path, url.query))
        if request.method == "POST" and url.path == "/stop":
            self.stop()
            return response(HTTPStatus.OK, {"stopping": os.getpid()})
        if self.waiting >= MAX_WAITING or self.waiting_bytes + len(request.body) > MAX_WAITING_BYTES:
            return response(HTTPStatus.SERVICE_UNAVAILABLE, {"error": BUSY})
        self.waiting += 1
        self.waiting_bytes += len(request.body)
        self.open += 1
        try:
            return response(*await in_thread(lambda: answer(self.loading, request)))
        finally:
            self.waiting -= 1
            self.waiting_bytes -= len(request.body)
            self.open -= 1
            self.active = time.monotonic()

    def authorized(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    def about(self, path: str, query: str) -> dict[str, Any]:
        """/health: loading, ok or failed, and how long nothing was asked; /progress: what the load or a build
        told its log since the `since`-th event, for the terminal that waits for it."""
        if path == "/health":
            quiet = 0.0 if self.busy() else time.monotonic() - self.active
            return {**self.loading.health(), "idle_seconds": round(quiet, 1)}
        since = parse_qs(query).get("since", ["0"])[0]
        told = self.feed.since(int(since) if since.isdigit() else 0) if self.feed else {"events": [], "next": 0}
        return {"status": self.loading.state, **told}


async def in_thread(call: Callable[[], T]) -> T:
    """call() in a daemon thread of its own. Not asyncio.to_thread: the loop's executor threads are joined when the
    loop closes, so a server told to stop (SIGTERM) waited for a question still running, for as long as it ran;
    a daemon thread is left to end with the process."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(value: T, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(value)

    def run() -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            error = exc
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:  # the loop has closed: the server stopped, nobody waits for this answer
            pass

    threading.Thread(target=run, name="question", daemon=True).start()
    return await done


def make_server(loading: Loading[Service], port: int, token: str | None = None, feed: Feed | None = None) -> Server:
    """Bound to the port but not yet serving, so a test can serve it in a thread over a stand-in service. The
    token is a new secret unless given."""
    return Server(loading, listen(port), token or secrets.token_urlsafe(32), feed)


def listen(port: int) -> socket.socket:
    """A socket bound to the port on loopback (0: any free one) and listening: connections queue from here, before
    any loop runs, and the port is known before the server announces itself."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((HOST, port))
        listener.listen(BACKLOG)
    except OSError as exc:
        listener.close()
        raise port_taken(port, exc) from exc
    return listener


def prove(token: str, query: str) -> tuple[HTTPStatus, dict[str, Any]]:
    """/proof: HMAC(secret, nonce), how a client learns that this port is its server's before it sends the secret.
    It tells nothing of the secret, and a stranger replaying one cannot answer the client's next nonce."""
    nonce = parse_qs(query).get("nonce", [""])[0]
    if not NONCE.fullmatch(nonce):
        return HTTPStatus.BAD_REQUEST, {"error": "bad request: /proof?nonce= takes 16-128 letters, digits, - or _"}
    return HTTPStatus.OK, {"proof": proof(token, nonce)}


def serve(
    load: Callable[[], Service],
    index: Path,
    notes: Library,
    port: int,
    on_ready: Callable[[records.Record], None],
    idle: float = 0,
    feed: Feed | None = None,
) -> None:
    """Listen first, then load the service in the background; serve until interrupted, terminated, stopped
    (POST /stop, `retriever stop`), idle for `idle` seconds (when > 0) or the load fails (raised here). The address
    file under the index folder and the entry in the user's registry are written as soon as the port is bound and
    live as long as the server: the address is also what keeps a second background server from starting for the
    same index, and clients that find the server loading wait for it."""
    loading: Loading[Service] = Loading(load, on_failure=lambda error: server.stop())
    server = make_server(loading, port, feed=feed)
    allow_open_files(MAX_RECEIVING + MAX_WAITING + 256)
    address = records.address(index)
    url = f"http://{HOST}:{server.port}"
    record = records.Record(url, os.getpid(), notes.identity(), str(index.resolve()), server.token, idle)

    async def main() -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C and SIGTERM alike remove the address file
            asyncio.get_running_loop().add_signal_handler(signum, server.stop)
        records.write(address, record)
        records.enter(record)
        on_ready(record)
        loading.start()
        await server.run(idle)

    try:
        asyncio.run(main())
    finally:
        records.remove(address, record.pid)
        records.leave(record.pid)
    if loading.error is not None:
        raise RetrieverError(loading.error)


def allow_open_files(wanted: int) -> None:
    """Raise this process's limit on open files towards `wanted`: at the common soft limit of 1 024, a full set
    of connections would leave the model and index files nothing, and accept() would stall."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )


def port_taken(port: int, exc: OSError) -> RetrieverError:
    return RetrieverError(f"cannot listen on {HOST}:{port} ({exc.strerror}); pick another --port")
