"""The two kinds of failure the CLI reports: the user's words (exit 2) and the work itself (exit 1)."""


class VidsrError(Exception):
    """A runtime failure with a message fit for one line on stderr (exit 1)."""

    exit_code = 1


class Cancelled(Exception):
    """Raised inside a stage (between two tiles, at a queue) when another stage failed or the user interrupted."""


class UsageError(VidsrError):
    """The command line asks for something impossible (exit 2)."""

    exit_code = 2
