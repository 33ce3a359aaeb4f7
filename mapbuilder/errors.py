"""Errors of the `mapbuilder` package."""

from __future__ import annotations


class MapError(Exception):
    """Base class of every fatal error raised by `mapbuilder`; per-item failures are returned as values."""
