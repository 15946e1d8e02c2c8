"""The connection to a Milvus store, and what a failure of it means (the server away, the credentials refused, or
something else), judged once here so every caller prints the same one line.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Protocol

from ..errors import RetrieverError
from .location import CREDENTIALS_HINT, Location

DATABASE_SINCE = (2, 4)  # the first Milvus whose aliases keep to the client's database


class StoreUnreachable(RetrieverError):
    """The server did not answer (down, restarting, or silent past the timeout): a `serve` waits and tries again."""


class CredentialsRefused(RetrieverError):
    """The server answered, and refused who we said we are."""


def quiet_pymilvus() -> None:
    """pymilvus logs every failed call at ERROR on stderr, and sets its loggers' levels on import; the one line
    that says what to do is ours to print."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC's C core logs keepalive chatter with Milvus Lite on stderr
    try:
        import pymilvus  # noqa: F401  (its import configures the loggers this then quiets)
    except ImportError as exc:
        raise RetrieverError(
            "a Milvus store needs the milvus extra: pip install 'pymilvus>=3,<4' 'milvus-lite>=3.2,<4' "
            f"(or install retriever with [milvus]); {exc}"
        ) from exc

    try:
        import milvus_lite.server_manager  # noqa: F401  (logs a traceback when a file is locked)
    except ImportError:  # a server-only install
        pass
    for name in [n for n in logging.root.manager.loggerDict if n.startswith(("pymilvus", "milvus_lite", "grpc"))]:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def connect(location: Location) -> Any:
    quiet_pymilvus()
    from pymilvus import MilvusClient

    arguments = location.client_arguments()
    try:
        # dedicated: a client of its own, so a connection given up on after a failure is not handed back again
        client = MilvusClient(location.uri, dedicated=True, **arguments)
    except Exception as exc:  # pymilvus raises its own types, and grpc's, for the same failures
        error = failure(location, exc)
        if isinstance(error, StoreUnreachable) and location.is_server:
            from .tls import tls_problem

            if problem := tls_problem(location):
                error = StoreUnreachable(f"cannot connect to Milvus store {location.label}: {problem}")
        raise error from exc
    if location.is_server and location.db not in ("", "default"):
        check_database_support(location, client)
    return client


def check_database_support(location: Location, client: Any) -> None:
    """A database other than the default works only where the server scopes aliases to it: Milvus before 2.4
    resolves, creates and swaps aliases in the default database whatever the client's database (milvus-io/milvus
    #30368), so a publish there would land where no reader finds it, or fail half way. Refused before any write."""
    try:
        version = str(client.get_server_version())
    except Exception as exc:
        client.close()
        raise failure(location, exc) from exc
    found = re.search(r"(\d+)\.(\d+)", version)
    if found and (int(found[1]), int(found[2])) < DATABASE_SINCE:
        client.close()
        raise RetrieverError(
            f"Milvus store {location.label}: Milvus {version} keeps aliases only in the default database, so an "
            f"index in database {location.db!r} would not be found; drop ?db= (one Milvus holds many indexes "
            f"under other names) or use Milvus {'.'.join(map(str, DATABASE_SINCE))} or later"
        )


def grpc_status(exc: BaseException) -> Any:
    """The gRPC status behind a failure, wherever pymilvus put it: as the exception's code (a retried call that
    ran out of time), or on the gRPC error it was raised from (a connection refused at the handshake)."""
    import grpc

    seen: BaseException | None = exc
    visited: set[int] = set()  # pymilvus raises `e from e`: a chain can loop
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        code = getattr(seen, "code", None)
        if isinstance(seen, grpc.RpcError) and callable(code):
            return code()
        if isinstance(code, grpc.StatusCode):
            return code
        seen = seen.__cause__ or seen.__context__
    return None


def failure(location: Location, exc: BaseException) -> RetrieverError:
    """One line for a failed call, of the kind that says what to do: judged by gRPC status and Milvus error code,
    since the servers' wording differs by version (and Milvus Lite's from both)."""
    import grpc
    from pymilvus.client.types import Status

    if isinstance(exc, RetrieverError):
        return exc
    reason = str(getattr(exc, "message", None) or exc or type(exc).__name__).splitlines()[0][:300]
    status = grpc_status(exc)
    where = f"Milvus store {location.label}"
    if status in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        details = getattr(exc.__cause__, "details", None)
        said = details() if callable(details) else reason
        return CredentialsRefused(f"{where} refused the credentials ({said}); check {CREDENTIALS_HINT}")
    if "open local milvus failed" in reason.lower():  # Milvus Lite's only signal: no code of its own
        return RetrieverError(
            f"cannot use {where}: {reason}; Milvus Lite serves one process at a time: stop the other one, "
            "or use a Milvus server to share"
        )
    timed_out = status == grpc.StatusCode.DEADLINE_EXCEEDED or isinstance(exc, TimeoutError)
    if status == grpc.StatusCode.UNAVAILABLE or timed_out or getattr(exc, "code", None) == Status.CONNECT_FAILED:
        limit = f" within {location.connect_timeout:g} s (connect) / {location.timeout:g} s (call)" if timed_out else ""
        return StoreUnreachable(
            f"cannot reach {where}{limit}: {reason}; check that Milvus runs there "
            "(timeouts: ?timeout=S&connect_timeout=S)"
        )
    return RetrieverError(f"cannot use {where}: {reason}; `retriever doctor` with the same --store tells what to do")


class Connected(Protocol):
    """What the lock, the publisher and the index readers use of a Milvus store: its connection and names, and
    the one way to call Milvus, whose failures become one-line errors. A protocol, so that those parts of the
    store need not import the store that holds them."""

    location: Location
    label: str
    notices: list[str]

    @property
    def client(self) -> Any: ...

    @property
    def lock_name(self) -> str: ...

    @property
    def release_command(self) -> str: ...

    @property
    def rebuild_hint(self) -> str: ...

    def call(self, method: Any, *args: Any, **kwargs: Any) -> Any: ...
