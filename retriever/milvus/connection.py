"""Where a Milvus store is and how to reach it: the URL and its options, credentials from the environment, the
connection, and what a failure of it means (the server away, the credentials refused, or something else).

Credentials never come from the URL: a URL is echoed in messages, commands and `/status`, and lands in shell
history; the environment is read and passed to the client, and nothing else sees it.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlsplit

from ..errors import RetrieverError
from ..search.view import MILVUS_SCHEME

TOKEN_ENV = "RETRIEVER_MILVUS_TOKEN"  # "user:password" or an API key
USER_ENV, PASSWORD_ENV = "RETRIEVER_MILVUS_USER", "RETRIEVER_MILVUS_PASSWORD"
CREDENTIALS_HINT = f"{TOKEN_ENV}, or {USER_ENV} and {PASSWORD_ENV}"
# The URL's query options; each may also come from RETRIEVER_MILVUS_<KEY>, which the URL's own value overrides.
OPTIONS = ("db", "tls", "ca", "cert", "key", "server_name", "timeout", "connect_timeout")
FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
DATABASE_SINCE = (2, 4)  # the first Milvus whose aliases keep to the client's database
CONNECT_TIMEOUT = 10.0  # seconds for the server to answer a connection: it answers in milliseconds when up
REQUEST_TIMEOUT = (
    15.0  # seconds for any one call (a question makes a few); flushes and index waits have their own bound
)


HIDDEN = "***"


def shown(where: str) -> str:
    """A store as given, rendered for people (messages, progress, `info`, `status`, logs, JSON): the one place
    that decides what of a URL may be shown. Secrets arrive where they do not belong (`user:pass@`, `token=…`), so
    everything not known to be harmless is hidden: userinfo, the fragment, the value of any option but the known
    connection options (none of which is a secret), and an unknown option's name unless it reads as one (a pasted
    key may stand alone, `?sk4Xq…`)."""
    if "://" not in where:
        return where  # a Milvus Lite file: a path
    try:
        parts = urlsplit(where)
    except ValueError:  # an unclosed `[` of an IPv6 host: nothing of it is sure to be harmless
        return f"{where.partition('://')[0]}://{HIDDEN}"
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{HIDDEN}@{host}" if "@" in parts.netloc else host
    query = "&".join(
        f"{option_name(key)}={quote(value, safe='/:.~') if key in OPTIONS else HIDDEN}"
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return (
        f"{parts.scheme}://{netloc}{parts.path}"
        + (f"?{query}" if query else "")
        + ("#" + HIDDEN if parts.fragment else "")
    )


def option_name(key: str) -> str:
    """An option's name as shown: a word of lowercase letters and underscores, as option names are, else hidden."""
    return key if re.fullmatch(r"[a-z_]{1,40}", key) else HIDDEN


class StoreUnreachable(RetrieverError):
    """The server did not answer (down, restarting, or silent past the timeout): a `serve` waits and tries again."""


class CredentialsRefused(RetrieverError):
    """The server answered, and refused who we said we are."""


@dataclass(frozen=True)
class Location:
    """A store as parsed from --store: connection settings, the alias name, and the label messages use."""

    uri: str  # what MilvusClient connects to: http(s)://host:port, or a Milvus Lite file
    name: str  # the alias readers resolve; generations are collections named NAME__g…
    label: str  # the URL or file as the user gave it, for people: shown(), so it holds no secret
    db: str = ""
    tls: bool = False
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str = ""
    timeout: float = REQUEST_TIMEOUT
    connect_timeout: float = CONNECT_TIMEOUT
    options: dict[str, str] = field(default_factory=dict, compare=False)  # as given, for messages

    @property
    def is_server(self) -> bool:
        return self.uri.startswith("http")

    @classmethod
    def parse(cls, where: str) -> Location:
        if not where.startswith(MILVUS_SCHEME):
            path = Path(where).expanduser().resolve()
            name = re.sub(r"\W", "_", path.stem, flags=re.ASCII) or "retriever"
            return cls(str(path), checked_name(name, where), shown(where))
        try:
            parts = urlsplit(where)
        except ValueError:
            parts = urlsplit("")
        if "@" in parts.netloc:  # before anything else echoes `where`
            raise RetrieverError(
                "a Milvus store URL must not carry credentials (they would show in messages and shell history); "
                f"give milvus://HOST:PORT/NAME and put them in {CREDENTIALS_HINT}"
            )
        name = parts.path.strip("/")
        try:
            port = parts.port  # urlsplit checks it only when asked: a word or 99999 raises here
        except ValueError:
            port = None
        if not parts.hostname or not port or not name or parts.fragment:
            raise RetrieverError(
                f"store {shown(where)!r} should look like milvus://HOST:PORT/NAME[?OPTION=VALUE&…] (PORT from 1 to 65535)"
            )
        settings = options_of(where, parts.query)
        tls = settings["tls"]
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return cls(
            f"{'https' if tls else 'http'}://{host}:{port}",
            checked_name(name, where),
            shown(where),
            **{k: v for k, v in settings.items() if k != "given"},
            options=settings["given"],
        )

    def client_arguments(self) -> dict[str, Any]:
        """MilvusClient's keyword arguments: credentials from the environment, TLS files, database, timeouts."""
        arguments: dict[str, Any] = {"timeout": self.connect_timeout}
        if not self.is_server:
            return arguments
        arguments.update(credentials(), db_name=self.db)
        if self.tls:
            arguments["secure"] = True
            if self.server_name:
                arguments["server_name"] = self.server_name
            if self.cert:  # pymilvus takes the CA as ca_pem_path with a client certificate, else as server_pem_path
                arguments.update(
                    client_pem_path=str(self.cert), client_key_path=str(self.key), ca_pem_path=str(self.ca)
                )
            elif self.ca:
                arguments["server_pem_path"] = str(self.ca)
        return arguments


def options_of(where: str, query: str) -> dict[str, Any]:
    """The connection options from the environment, overridden by the URL's query, each checked: one line names
    the first bad one."""
    given = {
        key: os.environ[f"RETRIEVER_MILVUS_{key.upper()}"]
        for key in OPTIONS
        if f"RETRIEVER_MILVUS_{key.upper()}" in os.environ
    }
    seen: set[str] = set()
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in OPTIONS:
            raise RetrieverError(
                f"store {shown(where)!r}: unknown option {option_name(key)!r}; known: {', '.join(OPTIONS)}"
            )
        if key in seen:
            raise RetrieverError(f"store {shown(where)!r}: option {option_name(key)!r} given twice")
        seen.add(key)
        given[key] = value
    out: dict[str, Any] = {"given": given}
    for key, value in given.items():
        out[key] = option_value(where, key, value)
    if ("cert" in out) != ("key" in out):
        raise RetrieverError(f"store {shown(where)!r}: a client certificate needs both cert and key")
    if "cert" in out and "ca" not in out:
        raise RetrieverError(f"store {shown(where)!r}: a client certificate needs the server's CA too (ca=PATH)")
    out["tls"] = out.get("tls", False) or any(k in out for k in ("ca", "cert", "server_name"))
    return out


def option_value(where: str, key: str, value: str) -> Any:
    source = f"store {shown(where)!r}: option {key}={value!r}"
    if key == "db":
        return checked_name(value, where, what="database name")
    if key == "tls":
        if value.lower() not in FLAGS:
            raise RetrieverError(f"{source} should be 1 or 0")
        return FLAGS[value.lower()]
    if key in ("ca", "cert", "key"):
        path = Path(value).expanduser()
        if not path.is_file() or not os.access(path, os.R_OK):
            raise RetrieverError(f"{source} names no readable file")
        return path.resolve()
    if key == "server_name":
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", value):
            raise RetrieverError(f"{source} is not a host name")
        return value
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= 3600:
        raise RetrieverError(f"{source} should be seconds, more than 0 and at most 3600")
    return seconds


def checked_name(name: str, where: str, what: str = "collection name") -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", name) or "__" in name:
        raise RetrieverError(
            f"store {shown(where)!r}: the {what} {name!r} must be letters, digits and single underscores"
        )
    return name


def credentials() -> dict[str, str]:
    token = os.environ.get(TOKEN_ENV, "")
    user, password = os.environ.get(USER_ENV, ""), os.environ.get(PASSWORD_ENV, "")
    if token and (user or password):
        raise RetrieverError(f"give Milvus credentials either in {TOKEN_ENV} or in {USER_ENV}/{PASSWORD_ENV}, not both")
    if bool(user) != bool(password):
        raise RetrieverError(f"{USER_ENV} and {PASSWORD_ENV} go together: set both, or use {TOKEN_ENV}")
    return {"token": token} if token else {"user": user, "password": password} if user else {}


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
