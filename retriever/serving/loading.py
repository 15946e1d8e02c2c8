"""A service loaded in a background thread, so a server answers its protocol at once (MCP's `initialize` and
`tools/list`, HTTP's `/health`) and only a question waits for the models and the index.

Loading imports numpy, FAISS, ONNX Runtime and Kiwi and reads hundreds of MB: 7-70 s on a busy machine, which
MCP clients took for a dead server. A question that comes meanwhile waits, within a bound,
and a load that failed is that question's one-line error rather than a hang.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

from ..errors import RetrieverError
from ..failpoints import holdpoint

T = TypeVar("T")
LOAD_SECONDS = 900.0  # a question waits this long for a load (a first index of a large folder takes minutes)
State = Literal["loading", "ok", "failed"]


class Loading(Generic[T]):
    def __init__(self, load: Callable[[], T], on_failure: Callable[[str], None] | None = None) -> None:
        self._load = load
        self._on_failure = on_failure
        self._done = threading.Event()
        self._settled = threading.Event()  # done, or closed by a server that stops: what a waiting question waits for
        self._value: T | None = None
        self.error: str | None = None

    @classmethod
    def of(cls, value: T) -> Loading[T]:
        """Already loaded: for a server over a service made in this process."""
        loading = cls(lambda: value)
        loading._run()
        return loading

    def start(self) -> Loading[T]:
        threading.Thread(target=self._run, name="loading", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            holdpoint("load")
            self._value = self._load()
        except Exception as exc:  # noqa: BLE001 - whatever it was, questions get it as one line
            self.error = str(exc) if isinstance(exc, RetrieverError) else f"unexpected {type(exc).__name__}: {exc}"
            self.error = " ".join(self.error.split())
        self._done.set()
        self._settled.set()
        if self.error is not None and self._on_failure is not None:
            self._on_failure(self.error)

    @property
    def state(self) -> State:
        if not self._done.is_set():
            return "loading"
        return "failed" if self.error is not None else "ok"

    def health(self) -> dict[str, Any]:
        """What /health and a loading server's status say: "loading" until the models and the index are in, then
        "ok" ("failed", with the error, until the server stops or, under MCP, for every call)."""
        state = {"status": self.state, "pid": os.getpid()}
        return state if self.error is None else {**state, "error": self.error}

    @property
    def ready(self) -> T | None:
        """The loaded value, or None while loading or after a failure; never waits."""
        return self._value if self._done.is_set() else None

    def close(self) -> None:
        """Questions still waiting for the load stop waiting: their server is stopping."""
        self._settled.set()

    def wait(self, seconds: float = LOAD_SECONDS) -> T:
        """The loaded value, once loaded; the load's error, a time-out or a stopping server as a RetrieverError."""
        if not self._settled.wait(seconds):
            raise RetrieverError(f"still loading the models and the index after {seconds:g} s; ask again")
        if not self._done.is_set():
            raise RetrieverError("the server is stopping")
        if self.error is not None:
            raise RetrieverError(self.error)
        assert self._value is not None
        return self._value
