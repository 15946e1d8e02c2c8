"""The one exception type the CLI turns into a one-line message and exit code 1."""


class RetrieverError(Exception):
    """A problem the user can fix; its message is shown as is, so it must say what to do."""
