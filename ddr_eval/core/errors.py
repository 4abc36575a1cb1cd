"""Errors that the CLI turns into one line on stderr and exit code 2.

Anything a user can get wrong (a suite field, a file, a checkpoint) raises :class:`UserError`
with a message that names the culprit, so the CLI never shows a traceback for bad input.
"""


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2, nothing written."""

    exit_code = 2


class CheckpointError(UserError):
    """A checkpoint that cannot be loaded safely or does not fit the architecture."""


class DegenerateInputError(UserError, ValueError):
    """Numbers a metric cannot be computed on (one class, constant or non-finite features)."""


class MemoryBudgetError(UserError):
    """Work refused before it starts because it would not fit the stated memory budget."""
