"""Errors of the `edge` package."""

from __future__ import annotations


class EdgeError(Exception):
    """Base class of every fatal error raised by `edge`; per-item failures are returned as values."""
