"""Upload tickets: short-lived permissions to write one frame, of one size, under one key.

Two kinds behind one interface. `S3UploadSigner` makes presigned POST policies that MinIO itself
enforces (exact key, exact length, the sha256 as metadata). `LocalUploadSigner` makes the API's own
HMAC-signed form fields for the embedded store, checked by `check_local_upload`. Neither trusts the
upload: the commit and the workers check every object's bytes again.
"""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta

from minio import Minio
from minio.datatypes import PostPolicy

from ingest.errors import IngestError, UploadRefusedError
from ingest.protocol import UploadItem, UploadTicket

LOCAL_UPLOAD_PATH = "/v1/objects"
SHA256_FIELD = "x-amz-meta-sha256"


class UploadSigner(ABC):
    """Issues upload tickets for frames a device is allowed to write."""

    @abstractmethod
    def ticket(self, key: str, item: UploadItem, expires_at: datetime) -> UploadTicket:
        """A ticket to write exactly `item` under `key` until `expires_at`."""


class S3UploadSigner(UploadSigner):
    """Presigned POST policies for MinIO/S3; `client` is built on the endpoint devices reach."""

    def __init__(self, client: Minio, bucket: str, public_endpoint_url: str) -> None:
        self.client = client
        self.bucket = bucket
        self.url = f"{public_endpoint_url.rstrip('/')}/{bucket}"

    def ticket(self, key: str, item: UploadItem, expires_at: datetime) -> UploadTicket:
        """MinIO refuses any other key, any other length, and a missing or different sha256."""
        policy = PostPolicy(self.bucket, expires_at)
        policy.add_equals_condition("key", key)
        policy.add_equals_condition(SHA256_FIELD, item.frame_id)
        policy.add_content_length_range_condition(item.size_bytes, item.size_bytes)
        fields = dict(self.client.presigned_post_policy(policy))
        fields.update({"key": key, SHA256_FIELD: item.frame_id})
        return UploadTicket(
            frame_id=item.frame_id, key=key, url=self.url, fields=fields, expires_at=expires_at
        )


class LocalUploadSigner(UploadSigner):
    """HMAC-signed form fields that the ingest API's own upload endpoint checks."""

    def __init__(self, secret: str, api_url: str) -> None:
        if len(secret) < 16:
            msg = "ROADSWARM_UPLOAD_SECRET must be at least 16 characters: generate a random one"
            raise IngestError(msg)
        self._secret = secret.encode()
        self.url = f"{api_url.rstrip('/')}{LOCAL_UPLOAD_PATH}"

    def ticket(self, key: str, item: UploadItem, expires_at: datetime) -> UploadTicket:
        """Fields naming the key, size, sha256 and expiry, and their HMAC."""
        fields = {
            "key": key,
            "size": str(item.size_bytes),
            "sha256": item.frame_id,
            "expires": str(int(expires_at.timestamp())),
        }
        fields["signature"] = _local_signature(self._secret, fields)
        return UploadTicket(
            frame_id=item.frame_id, key=key, url=self.url, fields=fields, expires_at=expires_at
        )

    def check(self, fields: dict[str, str], data: bytes, now: datetime) -> str:
        """The key to store `data` under, if the fields are signed, fresh and describe `data`."""
        try:
            expected = _local_signature(self._secret, fields)
            expires = datetime.fromtimestamp(int(fields["expires"]), UTC)
            size, sha = int(fields["size"]), fields["sha256"]
        except (KeyError, ValueError) as exc:
            msg = f"the upload form lacks or garbles {exc}: use the fields of a fresh upload ticket"
            raise UploadRefusedError(msg) from exc
        # Compared as bytes: compare_digest refuses str with non-ASCII characters.
        if not hmac.compare_digest(expected.encode(), fields.get("signature", "").encode()):
            msg = "the upload signature is not valid: ask the API for a new upload ticket"
            raise UploadRefusedError(msg)
        if now > expires:
            msg = f"the upload ticket expired at {expires.isoformat()}: ask for a new one"
            raise UploadRefusedError(msg)
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
            msg = f"the uploaded bytes are not the {size}-byte frame {sha[:12]} the ticket allows"
            raise UploadRefusedError(msg)
        return fields["key"]


def _local_signature(secret: bytes, fields: dict[str, str]) -> str:
    message = "\n".join(fields[name] for name in ("key", "size", "sha256", "expires"))
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def expiry(now: datetime, seconds: int) -> datetime:
    """When a ticket issued `now` stops working (whole seconds: POST policies have no finer)."""
    return (now + timedelta(seconds=seconds)).replace(microsecond=0)
