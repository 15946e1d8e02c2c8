"""The web page `serve` answers at /: an HTML file, its script, style and icon, shipped in the package (retriever/serving/web).

Nothing comes from elsewhere and nothing runs inline, so the Content-Security-Policy can be `'self'` alone: were a
note's text ever to reach the page as markup (the script only ever sets it as text), it could neither run a script
nor send the notes anywhere but back to this server. The files are read once and kept: a few kilobytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

POLICY = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
HEADERS = (
    ("Content-Security-Policy", POLICY),
    ("Cache-Control", "no-cache"),  # a newer retriever's page, not yesterday's, after an upgrade
)
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


def asset(path: str) -> Asset | None:
    """The page file served at `path`, or None when the path is not one of them."""
    if path not in FILES:
        return None
    name, content_type = FILES[path]
    return Asset(read(name), content_type)


@cache  # keyed by the few names in FILES, never by a path a client sent: those would grow it without bound
def read(name: str) -> bytes:
    return (files("retriever.serving") / "web" / name).read_bytes()
