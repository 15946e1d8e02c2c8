"""`retriever mcp --http`: the MCP tools on loopback, for the user who started them alone.

Loopback keeps out other machines, not other local users or web pages (see server.py). So, as `serve` does, every
request must carry a secret (Authorization: Bearer), made at the start and printed once, or the user's own from
RETRIEVER_MCP_TOKEN, so that a client's configuration stays the same across restarts; the SDK's bearer
authentication asks `Secret` for it, which compares in constant time. Host must name this server's loopback
address and port, and Origin, when sent, must be this server's own: the SDK's transport security, given exact
values, since its default for loopback lets any port through, and a page served on another loopback port is
another site. The server enters itself in the user's registry (records.py) and answers `serve`'s /proof, /health
and /stop, so `retriever status` lists it and `retriever stop` ends it.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import RetrieverError
from ..reading.notes import Library
from . import records
from .loading import Loading
from .mcp import build
from .server import HOST, LOOPBACK_NAMES, listen, prove

if TYPE_CHECKING:
    from .service import Service

TOKEN_ENV = "RETRIEVER_MCP_TOKEN"
TOKEN = re.compile(r"[A-Za-z0-9._~+/-]{16,4096}=*")  # RFC 6750's b64token, long enough not to be guessed
ENDPOINT = "/mcp"
STOP_GRACE_SECONDS = 5  # for open streams (a client's GET stream stays open) to close at a stop
UNAUTHORIZED = "this server answers only its own user: send its token as Authorization: Bearer"
Answer = Callable[[Request], tuple[HTTPStatus, dict[str, Any]]]


@dataclass(frozen=True)
class Secret:
    """The SDK's TokenVerifier for one token: the bearer of it is the user who started the server."""

    token: str

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self.token.encode()):
            return AccessToken(token=token, client_id="retriever", scopes=[])
        return None


def chosen_token() -> tuple[str, bool]:
    """RETRIEVER_MCP_TOKEN when set, else a new secret; and whether it is new (and so must be printed)."""
    given = os.environ.get(TOKEN_ENV, "")
    if not given:
        return secrets.token_urlsafe(32), True
    if not TOKEN.fullmatch(given):
        raise RetrieverError(
            f"{TOKEN_ENV} must be at least 16 letters, digits or . _ ~ + / - (a header value, hard to guess); "
            f"`python -c 'import secrets; print(secrets.token_urlsafe(32))'` makes one"
        )
    return given, False


def guard(port: int) -> TransportSecuritySettings:
    """Exact Host and Origin values: this port on a loopback name, nothing else."""
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{name}:{port}" for name in LOOPBACK_NAMES],
        allowed_origins=[f"http://{name}:{port}" for name in LOOPBACK_NAMES],
    )


def serve(
    load: Callable[[], Service],
    index: Path,
    notes: Library,
    port: int,
    on_ready: Callable[[records.Record, bool], None],
) -> None:
    """Listen, enter the registry, announce (`on_ready` gets the record and whether its token is new), load in the
    background and serve until stopped (`retriever stop`, Ctrl-C, SIGTERM); the entry lives as long as the server."""
    token, new = chosen_token()
    listener = listen(port)
    port = listener.getsockname()[1]
    url = f"http://{HOST}:{port}"
    loading: Loading[Service] = Loading(load)
    # issuer_url is required by the settings but unused: no OAuth server is offered, only the token is checked
    mcp = build(loading, token_verifier=Secret(token), auth=AuthSettings(issuer_url=url, resource_server_url=None))
    settings = guard(port)

    def stop() -> None:
        server.should_exit = True
        loading.close()  # a call still waiting for the load ends now

    add_control_routes(mcp, token, settings, loading, stop)
    app = mcp.streamable_http_app(streamable_http_path=ENDPOINT, transport_security=settings, host=HOST)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=STOP_GRACE_SECONDS))
    record = records.Record(url, os.getpid(), notes.identity(), str(index.resolve()), token, 0, "mcp")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # uvicorn stops on it, then raises it again
    records.enter(record)
    try:
        on_ready(record, new)
        loading.start()
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM: a stop like `retriever stop`
    finally:
        records.leave(record.pid)


def add_control_routes(
    mcp: MCPServer, token: str, settings: TransportSecuritySettings, loading: Loading[Service], stop: Callable[[], None]
) -> None:
    """`serve`'s /proof, /health and /stop, behind the same Host and Origin checks as the protocol and, but for
    /proof, the same token: the SDK authenticates every request, and these routes take its verdict."""
    checks = TransportSecurityMiddleware(settings)

    def add(path: str, method: str, answer: Answer, private: bool = True) -> None:
        async def endpoint(request: Request) -> Response:
            refused = await checks.validate_request(request, is_post=method == "POST")
            if refused is not None:
                return refused
            if private and not isinstance(request.scope.get("user"), AuthenticatedUser):
                return JSONResponse({"error": UNAUTHORIZED}, HTTPStatus.UNAUTHORIZED)
            status, body = answer(request)
            return JSONResponse(body, status)

        mcp.custom_route(path, [method], include_in_schema=False)(endpoint)

    def stopping(request: Request) -> tuple[HTTPStatus, dict[str, Any]]:
        stop()
        return HTTPStatus.OK, {"stopping": os.getpid()}

    add("/proof", "GET", lambda request: prove(token, request.url.query), private=False)
    add("/health", "GET", lambda request: (HTTPStatus.OK, loading.health()))
    add("/stop", "POST", stopping)
