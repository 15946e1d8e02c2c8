"""`--watch`: re-index when notes change, so a server's answers follow the notes without anyone running `index`.

watchfiles batches the events of one save (editors write, rename and touch several files) within the debounce
window, and the rebuild is incremental, so one edit costs one note's embeddings. Where another process's server of
the same index runs (an `mcp --watch` beside a `serve`), the rebuild is sent to it (Service.refresh), and this
process never loads the indexing models.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from watchfiles import watch

from ..errors import RetrieverError
from ..reading.notes import NOTE_SUFFIXES
from .service import Service

DEBOUNCE_MS = 300
READY_MS = 200  # the watcher yields an empty batch after this long without changes: the sign that it is watching
READY_WAIT_S = 30  # how long start-up waits for that sign before going on regardless


def note_filter(bases: list[Path]) -> Callable[[object, str], bool]:
    """Changes to note files only, as the scanner sees them: hidden files and folders inside the notes don't count.
    (What excludes leave out still wakes a rebuild, which then finds nothing changed and writes nothing.) bases are
    the folders exactly as watched: a change is reported under the path its watch was given, so any other spelling
    of them (`cfg/../vault`, a link) would match no change at all."""

    def is_note(change: object, path: str) -> bool:
        name = Path(path)
        base = next((b for b in bases if name.is_relative_to(b)), None)
        hidden = base is None or any(part.startswith(".") for part in name.relative_to(base).parts)
        return name.suffix.lower() in NOTE_SUFFIXES and not hidden

    return is_note


def watch_notes(service: Service, stop: threading.Event, ready: threading.Event, say: Callable[[str], None]) -> None:
    """Runs until stop is set; a failed rebuild is reported and the last good index keeps answering. ready is set
    once the folder is being watched: the first (empty) yield comes after the watches are in place."""
    folders = [folder.root.resolve() for folder in service.retriever.notes.folders]  # one spelling for both
    for changes in watch(
        *folders,
        watch_filter=note_filter(folders),
        debounce=DEBOUNCE_MS,
        stop_event=stop,
        raise_interrupt=False,
        rust_timeout=READY_MS,
        yield_on_timeout=True,
    ):
        ready.set()
        if not changes:
            continue
        try:
            report = service.refresh()
        except RetrieverError as exc:
            say(f"re-index after {len(changes)} change(s) failed: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - the watcher outlives a failed build; the last index keeps answering
            say(f"re-index after {len(changes)} change(s) failed: unexpected {type(exc).__name__}: {exc}")
            continue
        say(
            f"re-indexed: {report['added']} added, {report['removed']} removed, {report['embedded']} embedded "
            f"({report['seconds']:.1f} s)"
        )


def start_watching(service: Service, say: Callable[[str], None]) -> threading.Event:
    """Watch in a daemon thread, returning once it watches (setting up a watch on a large tree takes a moment, and
    an edit saved before that was seen late: 5.6 s instead of 3.5 s at 10 000 notes); the returned event stops it."""
    stop, ready = threading.Event(), threading.Event()
    service.watching = True
    service.auto_update = service.retriever.auto_update = False  # the watcher keeps it fresh, not each question
    threading.Thread(target=watch_notes, args=(service, stop, ready, say), name="watch", daemon=True).start()
    ready.wait(READY_WAIT_S)
    return stop
