"""Named crash and hold points for the crash-safety and start-up tests.

`RETRIEVER_FAILPOINT=<name>` makes the process SIGKILL itself when it reaches that point, exactly as a power cut
or the OOM killer would, so a test can prove that every stage of a build leaves the previous index readable.
`RETRIEVER_HOLD=<name>:<path>` stops the process at that point until the file exists, so a test can look at a
server while it is still loading, by order rather than by timing.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def failpoint(name: str) -> None:
    if os.environ.get("RETRIEVER_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def holdpoint(name: str) -> None:
    held, _, release = os.environ.get("RETRIEVER_HOLD", "").partition(":")
    if held == name:
        while not Path(release).exists():
            time.sleep(0.05)
