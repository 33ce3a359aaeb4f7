"""Errors of the `models` package."""

from __future__ import annotations


class ModelError(Exception):
    """Base class of every fatal error raised by `models`; per-item failures are returned as values."""
