"""Errors of the `rewards` package."""

from __future__ import annotations


class RewardsError(Exception):
    """Base class of every fatal error raised by `rewards`; per-item failures are returned as values."""


class EpochError(RewardsError):
    """An epoch that is malformed, not yet closable, or already closed."""


class OperatorKeyError(RewardsError):
    """The operator key is missing, unreadable, readable by others, or would be overwritten."""


class LedgerError(RewardsError):
    """The ledger cannot be read or appended to as asked (a missing record, a broken chain)."""


class ParamsError(RewardsError):
    """Reward parameters that are inconsistent (a negative pool, a split over 10,000 bp)."""
