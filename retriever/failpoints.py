"""Named crash points for the crash-safety tests.

`RETRIEVER_FAILPOINT=<name>` makes the process SIGKILL itself when it reaches that point, exactly as a power cut
or the OOM killer would, so a test can prove that every stage of a build leaves the previous index readable.
"""

from __future__ import annotations

import os
import signal


def failpoint(name: str) -> None:
    if os.environ.get("RETRIEVER_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
