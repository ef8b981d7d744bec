"""Errors that reach a person, not a traceback.

``UserError`` means "the input was wrong and here is how to fix it": the CLI prints its message
as one paragraph and exits 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input (recipe, file, option, plugin name); the message says what and how to fix it."""

    exit_code = 2


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the last good checkpoint is kept and named."""

    exit_code = 3


class PluginError(UserError):
    """A plugin failed to load or register; the message names its package."""


class Interrupted(UserError):
    """SIGINT or SIGTERM arrived; a checkpoint was written and the run can be resumed."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum  # 130 for SIGINT, 143 for SIGTERM, as shells report
