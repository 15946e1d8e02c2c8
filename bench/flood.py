"""A served question's time, quiet and while hostile clients hold connections: 64 sending a request a byte every
0.5 s (and coming back when closed) and 1 000 connections opened at once and left idle. Then 1 000 requests sent
at the same moment: how many were answered, and how.

    .venv/bin/retriever serve --port 0 &   then   .venv/bin/python bench/flood.py [--seconds 15]

The server's address and secret come from index/server.json. The quiet run is the reference for the flooded one.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retriever.serving import records
from retriever.serving.client import Connection, ready

HOST = "127.0.0.1"
HEAD = f"POST /ask HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n".encode() * 100


@contextmanager
def flooded(port: int, slow: int = 64, idle: int = 1000) -> Iterator[None]:
    stop = threading.Event()

    def slowloris() -> None:
        connection, sent = socket.create_connection((HOST, port)), 0
        while not stop.wait(0.5):
            try:
                connection.sendall(HEAD[sent : sent + 1])
                sent += 1
            except OSError:  # closed at the server's deadline: come back, as an attacker would
                connection.close()
                connection, sent = socket.create_connection((HOST, port)), 0
        connection.close()

    drippers = [threading.Thread(target=slowloris) for _ in range(slow)]
    for thread in drippers:
        thread.start()
    idling = []
    for _ in range(idle):
        connection = socket.socket()
        connection.setblocking(False)
        connection.connect_ex((HOST, port))
        idling.append(connection)
    try:
        yield
    finally:
        stop.set()
        for thread in drippers:
            thread.join()
        for connection in idling:
            connection.close()


def asked(port: int, token: str, question: str, seconds: float) -> list[float | None]:
    """Seconds per answer, asking every 0.2 s for `seconds`; None for a question not answered within 30 s."""
    body = json.dumps({"question": question, "k": 5}).encode()
    took, finish = [], time.monotonic() + seconds
    while time.monotonic() < finish:
        request = urllib.request.Request(f"http://{HOST}:{port}/ask", data=body, headers=headers(token))
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answered = bool(json.loads(response.read())["results"])
        except (OSError, ValueError):
            answered = False
        took.append(time.monotonic() - started if answered else None)
        time.sleep(0.2)
    return took


def headers(token: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


def burst(port: int, token: str, route: str, clients: int, question: str) -> Counter[int | str]:
    """`clients` requests sent at the same moment, each on its own connection: how many got which status (or
    which error, for one closed unanswered)."""
    body = json.dumps({"question": question, "k": 5}).encode() if route != "/health" else None
    answers: Counter[int | str] = Counter()
    start = threading.Barrier(clients)

    def one() -> None:
        request = urllib.request.Request(f"http://{HOST}:{port}{route}", data=body, headers=headers(token))
        start.wait()
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                response.read()
                answers[response.status] += 1
        except urllib.error.HTTPError as exc:
            answers[exc.code] += 1
        except OSError as exc:
            answers[type(exc).__name__] += 1

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path, default=Path("index"))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--question", default="배치 사이즈는 어떻게 정하나요?")
    args = parser.parse_args()
    record = records.read(records.address(args.index))
    if record is None or not ready(Connection(record.url, record.token)):  # the quiet run must not time its load
        raise SystemExit(f"no server of {args.index} answers")
    port, token = int(record.url.rsplit(":", 1)[1]), record.token
    quiet = asked(port, token, args.question, args.seconds)
    with flooded(port):
        loud = asked(port, token, args.question, args.seconds)
    for name, took in (("quiet", quiet), ("flooded", loud)):
        answered = [seconds * 1000 for seconds in took if seconds is not None]
        median, worst = (statistics.median(answered), max(answered)) if answered else (float("nan"),) * 2
        print(f"{name:8} {len(answered):3} of {len(took):3} answered  median {median:7.1f} ms  max {worst:7.1f} ms")
    for route in ("/health", "/ask"):
        print(f"1 000 at once to {route}: {dict(burst(port, token, route, 1000, args.question))}")


if __name__ == "__main__":
    sys.exit(main())
