"""Errors of the `ingest` package."""

from __future__ import annotations


class IngestError(Exception):
    """Base class of every fatal error raised by `ingest`.

    Per-item failures (one bad frame in a batch) are returned as values, not raised.
    """


class InvalidObjectKeyError(IngestError):
    """An object-store key is malformed or could escape the store (for example `../x`)."""


class ObjectNotFoundError(IngestError):
    """The object store holds no object under the requested key."""


class QueueConfigError(IngestError):
    """The Celery application cannot be built from the given settings (e.g. no broker URL)."""


class ObjectCorruptError(IngestError):
    """An object's bytes no longer match the sha256 recorded when it was written."""
