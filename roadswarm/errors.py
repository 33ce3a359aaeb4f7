"""Errors a user of the command line can see.

Every error carries a message that says what was wrong and what to do, and an exit code that the CLI
turns into the process status. Per-item failures in batch work are values, not exceptions; only fatal
errors derive from these classes.
"""

from __future__ import annotations


class RoadswarmError(Exception):
    """Base class of every error the CLI reports as one line and a non-zero exit."""

    exit_code = 1


class UserInputError(RoadswarmError):
    """The input given to a command is missing, malformed or unusable."""

    exit_code = 2


class OutputError(RoadswarmError):
    """The command cannot write where it was told to."""

    exit_code = 3


class ServiceError(RoadswarmError):
    """A service the command needs (broker, database, object store) is unreachable or failed."""

    exit_code = 4
