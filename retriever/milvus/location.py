"""Where a Milvus store is: the --store URL or Milvus Lite file parsed into a `Location`, its options checked, and
the credentials read from the environment. Kept apart from the connection, so that what only needs to name or show
a store (the TLS probe, `info`, messages) does not pull in the client.

Credentials never come from the URL: a URL is echoed in messages, commands and `/status`, and lands in shell
history; the environment is read and passed to the client, and nothing else sees it.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from ..errors import RetrieverError

MILVUS_SCHEME = "milvus://"
TOKEN_ENV = "RETRIEVER_MILVUS_TOKEN"  # "user:password" or an API key
USER_ENV, PASSWORD_ENV = "RETRIEVER_MILVUS_USER", "RETRIEVER_MILVUS_PASSWORD"
CREDENTIALS_HINT = f"{TOKEN_ENV}, or {USER_ENV} and {PASSWORD_ENV}"
# The URL's query options; each may also come from RETRIEVER_MILVUS_<KEY>, which the URL's own value overrides.
OPTIONS = ("db", "tls", "ca", "cert", "key", "server_name", "timeout", "connect_timeout")
FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
CONNECT_TIMEOUT = 10.0  # seconds for the server to answer a connection: it answers in milliseconds when up
REQUEST_TIMEOUT = (
    15.0  # seconds for any one call (a question makes a few); flushes and index waits have their own bound
)


HIDDEN = "***"


def is_milvus(where: str) -> bool:
    """A Milvus server URL, or a Milvus Lite database file (a path ending in .db)."""
    return where.startswith(MILVUS_SCHEME) or where.endswith(".db")


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
