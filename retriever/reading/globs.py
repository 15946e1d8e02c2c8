"""Gitignore-style globs (`--path` filters, exclude globs, .gitignore lines), matched as git matches them and in
time linear in the path whatever the glob.

pathspec turns each glob into a regular expression. Python's re backtracks: `*` × n then `b` against a path
without a `b` tried every way of cutting the path into n pieces (2 s at n = 8, hours at n = 20), and a server
matching such a `--path` answered nobody meanwhile. RE2 runs the same expressions as an automaton, one pass over
the path, so no glob's shape costs more than its length. Its automaton is bounded in memory: a glob longer than
any path, or more globs than it holds, are refused in one line rather than matched slowly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import RetrieverError

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

MAX_GLOB_CHARS = 4096  # PATH_MAX on Linux: a longer glob could only match paths no file has


def gitignore_spec(lines: Sequence[str], where: str) -> GitIgnoreSpec:
    """The globs as one matcher; `where` says whose globs they are in the one-line error a bad one gets."""
    import re2
    from pathspec import GitIgnoreSpec

    for number, line in enumerate(lines, 1):
        if len(line) > MAX_GLOB_CHARS:
            place = f"{where}, line {number}" if len(lines) > 1 else where
            raise RetrieverError(
                f"{place}: a glob of {len(line)} characters, longer than any path (at most {MAX_GLOB_CHARS})"
            )
    try:
        return GitIgnoreSpec.from_lines(lines, backend="re2")
    except ValueError as exc:  # pathspec's GitIgnorePatternError
        raise RetrieverError(f"{where}: {exc}") from None
    except re2.error:
        raise RetrieverError(f"{where}: {len(lines)} globs are more than can be matched at once; use fewer") from None
