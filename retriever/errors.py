"""The one exception type the CLI turns into a one-line message and exit code 1."""


class RetrieverError(Exception):
    """A problem the user can fix; its message is shown as is, so it must say what to do."""


class StaleRead(RetrieverError):
    """A read of a shared index that looked inconsistent (a row, a piece or a collection missing, a manifest cut
    short): most likely the generation moved or was dropped mid-question, so the question is asked once more
    against the alias resolved afresh before the index is called broken."""


class Busy(RetrieverError):
    """A question waited its bound for another that held the index: asking again may succeed (HTTP 503)."""
