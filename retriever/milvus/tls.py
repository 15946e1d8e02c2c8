"""What is wrong with TLS between us and a Milvus server that would not connect.

pymilvus reports every failed handshake as the server being unavailable; the reason (which certificate, which
name) goes only to gRPC's own log. So when a connection fails, one handshake of our own, with the same CA, client
certificate and name, tells the certificate problem apart from a server that is simply away.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

from .location import Location

NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH: the certificate holds other names
# A handshake with a live server takes milliseconds; a server that accepts and never answers must not cost the user
# a second connect timeout on top of the one pymilvus already waited out.
PROBE_SECONDS = 2.0


def tls_problem(location: Location) -> str | None:
    """The TLS problem in one phrase with what to change, or None when the handshake is not what failed (the
    server away, or TLS fine and something else wrong)."""
    parts = urlsplit(location.uri)
    host, port = parts.hostname or "", parts.port or 0
    try:
        with socket.create_connection((host, port), timeout=min(location.connect_timeout, PROBE_SECONDS)) as raw:
            return handshake_problem(location, raw, host) if location.tls else plaintext_problem(raw, host)
    except OSError:
        return None  # no connection at all: not a TLS matter


def handshake_problem(location: Location, raw: socket.socket, host: str) -> str | None:
    context = ssl.create_default_context(cafile=str(location.ca) if location.ca else None)
    if location.cert and location.key:
        context.load_cert_chain(str(location.cert), str(location.key))
    name = location.server_name or host
    try:
        with context.wrap_socket(raw, server_hostname=name):
            return None
    except ssl.SSLCertVerificationError as exc:
        why = exc.verify_message
        if exc.verify_code in NAME_MISMATCH:
            return f"the server's certificate is not for {name!r} ({why}); set ?server_name= to a name it holds"
        if location.ca:
            return f"the server's certificate is not signed by the CA in {location.ca} ({why}); give its CA as ?ca="
        return f"the server's certificate is not trusted here ({why}); give the CA that signed it as ?ca=PATH"
    except ssl.SSLError as exc:
        if "WRONG_VERSION_NUMBER" in str(exc) or "record layer failure" in str(exc):
            return "the server does not speak TLS; drop tls, ca and server_name, or give its TLS port"
        return f"the TLS handshake failed ({exc.reason or exc}); check the server's certificate and ?ca="
    except (ConnectionError, TimeoutError, OSError):  # a plaintext server hangs up on a TLS hello
        return "the server does not speak TLS (it hung up on the TLS handshake); drop tls, ca and server_name"


def plaintext_problem(raw: socket.socket, host: str) -> str | None:
    """A server we spoke plaintext to that completes a TLS handshake wants TLS."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # only whether it speaks TLS at all
    try:
        with context.wrap_socket(raw, server_hostname=host):
            return "the server speaks TLS; add ?tls=1 (and ?ca=PATH with the CA that signed its certificate)"
    except (ssl.SSLError, OSError):
        return None
