"""Errors of the `rewards` package."""

from __future__ import annotations


class RewardsError(Exception):
    """Base class of every fatal error raised by `rewards`; per-item failures are returned as values."""
