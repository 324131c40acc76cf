"""User-facing errors.

A :class:`KdtuiError` is a mistake the user can fix (a preset key, a path, a checkpoint).
The CLI prints its message as one paragraph and exits with code 2, never a traceback.
"""


class KdtuiError(Exception):
    """An error whose message is meant for the user: what is wrong, what was expected, how to fix it."""


class ConfigError(KdtuiError):
    """A preset or ``--set`` value that does not fit the schema."""


class DataError(KdtuiError):
    """A dataset that is missing, malformed or cannot be downloaded."""


class CheckpointError(KdtuiError):
    """A checkpoint that is missing, unreadable or does not fit the model."""
