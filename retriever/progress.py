"""What long work tells the user while it runs, on stderr: which phase, how far, how fast, how long still.

Texts are embedded longest first (batches of like length pad least), so a count of texts runs slow at first and
fast at the end; the time left is estimated from characters embedded instead, which track the work. A terminal
gets a live bar; a log or a pipe gets a plain line every PLAIN_EVERY seconds, since a redrawn bar is noise there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

PLAIN_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal
PHASE_DELAY = 0.5  # seconds a phase runs before it is announced
TICK_DELAY = 2.0  # seconds a counted step runs before its count is told: reading a usual folder takes less
CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if chr(code) not in "\n\t"}


def safe(text: object) -> str:
    """Text from notes, file names or questions as the terminal should show it: rich markup escaped, and control
    characters spelt out, so a note cannot move the cursor, recolour the screen or retitle the window."""
    return escape(str(text).translate(CONTROL))


@contextmanager
def ticking(note: Callable[[str], None], describe: Callable[[], str]) -> Iterator[None]:
    """describe() noted after TICK_DELAY, then every PLAIN_EVERY seconds, for as long as the block runs: a step
    that counts as it goes (a folder walked) but cannot say how far it has to go."""
    stop = threading.Event()

    def tell() -> None:
        wait = TICK_DELAY
        while not stop.wait(wait):
            note(describe())
            wait = PLAIN_EVERY

    threading.Thread(target=tell, name="ticking", daemon=True).start()
    try:
        yield
    finally:
        stop.set()


@dataclass(frozen=True)
class EmbedProgress:
    texts: int
    total_texts: int
    chars: int
    total_chars: int
    chunks: int  # of the notes being indexed, for scale


def duration(seconds: float) -> str:
    seconds = max(int(seconds + 0.5), 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s" if rest >= 60 else f"{rest}s"


def status(state: EmbedProgress, elapsed: float) -> str:
    """'120/1676 texts of 324 chunks, 14.2 texts/s, about 1m40s left' once there is a rate to tell."""
    shown = f"{state.texts}/{state.total_texts} texts of {state.chunks} chunks"
    if state.texts == 0 or elapsed <= 0:
        return shown
    left = elapsed * (state.total_chars - state.chars) / max(state.chars, 1)
    return f"{shown}, {state.texts / elapsed:.1f} texts/s, about {duration(left)} left"


@contextmanager
def announced(note: Callable[[str], None], message: str) -> Iterator[None]:
    """The message once the step has taken PHASE_DELAY: a quick step (models already cached in the OS, or a
    model name that fails at once) leaves stderr to its result or its one-line error."""
    timer = threading.Timer(PHASE_DELAY, note, [f"{message}…"])
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


class ConsoleReporter:
    """Phases, notices and embedding progress on stderr, so stdout stays clean for results and --json."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.started = 0.0
        self.last_line = 0.0
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def note(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"[dim]{safe(message)}[/dim]")

    def phase(self, message: str) -> AbstractContextManager[None]:
        return announced(self.note, message)

    def progress(self, state: EmbedProgress, elapsed: float | None = None) -> None:
        """`elapsed`: seconds since the embedding began, when it ran elsewhere (a server) and this process only
        hears of it now and then."""
        if self.quiet or state.total_texts == 0:
            return
        now = time.monotonic()
        if state.texts == 0 or not self.started:  # not started: the start was told to another terminal
            self.started = self.last_line = now
            self.console.print(f"[dim]embedding {state.total_texts} texts of {state.chunks} chunks[/dim]")
        line = status(state, now - self.started if elapsed is None else elapsed)
        finished = state.texts >= state.total_texts
        if self.console.is_terminal:
            self.draw(state, line, finished)
        elif not finished and now - self.last_line >= PLAIN_EVERY:
            self.last_line = now
            self.console.print(f"embedding: {line}")
        if finished:
            self.console.print(f"[dim]embedded: {line}[/dim]")

    def draw(self, state: EmbedProgress, line: str, finished: bool) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        if self.bar is None:
            self.bar = Progress(BarColumn(), TextColumn("{task.description}"), console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(line, total=state.total_chars)
        assert self.task is not None
        self.bar.update(self.task, completed=state.chars, description=line)
        if finished:
            self.bar.stop()
            self.bar = None


class Feed:
    """A server's reporter: it tells its own log, and keeps what it told, numbered, so that the terminal whose
    question made it build can show the same lines and bars (`ask` polls /progress while it waits). Intermediate
    embedding counts replace each other, so a long build keeps a handful of events, not one per batch."""

    KEEP = 500

    def __init__(self, log: ConsoleReporter) -> None:
        self.log = log
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.next = 0
        self.started = 0.0  # when the embedding under way began
        self.lock = threading.Lock()

    def note(self, message: str) -> None:
        self.add({"note": message}, replaceable=False)
        self.log.note(message)

    def phase(self, message: str) -> AbstractContextManager[None]:
        return announced(self.note, message)

    def progress(self, state: EmbedProgress) -> None:
        now = time.monotonic()
        if state.texts == 0 or not self.started:
            self.started = now
        event = {"progress": asdict(state), "seconds": now - self.started}
        self.add(event, replaceable=0 < state.texts < state.total_texts)
        self.log.progress(state)

    def add(self, event: dict[str, Any], replaceable: bool) -> None:
        with self.lock:
            last = self.events[-1][1] if self.events else None
            if replaceable and last is not None and last.get("replaceable"):
                self.events.pop()
            self.events.append((self.next, {**event, "replaceable": replaceable}))
            self.next += 1
            del self.events[: -self.KEEP]

    def since(self, first: int) -> dict[str, Any]:
        """The events numbered `first` on, and the number to ask from next time."""
        with self.lock:
            return {"events": [event for number, event in self.events if number >= first], "next": self.next}


EMBED_FIELDS = tuple(field.name for field in fields(EmbedProgress))


def replay(event: object, reporter: ConsoleReporter) -> None:
    """An event of a server's Feed, told by this process's reporter; anything malformed is passed over."""
    if not isinstance(event, dict):
        return
    if isinstance(event.get("note"), str):
        reporter.note(event["note"])
        return
    counts = event.get("progress")
    seconds = event.get("seconds")
    if isinstance(counts, dict) and all(type(counts.get(name)) is int for name in EMBED_FIELDS):
        elapsed = float(seconds) if type(seconds) in (int, float) else None
        reporter.progress(EmbedProgress(**{name: counts[name] for name in EMBED_FIELDS}), elapsed)
