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


class CatalogError(IngestError):
    """The catalog database cannot be reached, migrated or written."""


class AuthenticationError(IngestError):
    """A request that is not signed by a registered device key, or signed too long ago."""


class DeviceRevokedError(IngestError):
    """A request from a device whose key an operator revoked."""


class EnrollmentRefusedError(IngestError):
    """A registration without the enrolment token this deployment requires."""


class ReplayError(IngestError):
    """A batch whose counter is not above the device's last one, or reuses a counter."""


class BatchRejectedError(IngestError):
    """A batch that names objects which are missing or differ from what the manifest says."""


class NotFoundError(IngestError):
    """Something an operator or a device named does not exist in the catalog."""


class UploadRefusedError(IngestError):
    """An upload whose permission is forged, expired, or whose bytes are not the ones allowed."""
