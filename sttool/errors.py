"""The one exception type users see: a message they can act on, printed without a traceback."""


class SttoolError(Exception):
    """A user-facing error: one line naming the bad value, where it came from, and what is valid."""
