"""Short-lived signed URLs to blurred frame images, served by this API from the object store.

The URL names a frame id (64 hex digits, never a path), an expiry time and an HMAC-SHA256 over
both, so it cannot be changed to reach another frame or to live longer. It is a capability: whoever
holds it may fetch that one image until it expires, as with S3 presigned URLs. (With S3/MinIO as
the store, imagery answers carry presigned GETs instead, see presign.py, and S3 serves the bytes.)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from mapbuilder.serve.errors import SignedUrlError

FRAME_ID = re.compile(r"[0-9a-f]{64}")
IMAGE_PATH = "/v1/frames/{frame_id}/image.jpg"


@dataclass(frozen=True)
class SignedImage:
    """Where a frame's image can be fetched, and until when (Unix seconds)."""

    path: str
    expires_s: int


class UrlSigner:
    """Signs and checks image URLs with one secret shared by every API process."""

    def __init__(self, secret: str, ttl_s: int) -> None:
        if len(secret) < 16:
            msg = "ROADSWARM_SERVE_URL_SECRET must be at least 16 characters: set it to a long random string"
            raise SignedUrlError(msg)
        self._secret = secret.encode()
        self.ttl_s = ttl_s

    def _signature(self, frame_id: str, expires_s: int) -> str:
        message = f"{frame_id}:{expires_s}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(self, frame_id: str, *, now_s: float | None = None) -> SignedImage:
        """A URL path (with query) to the frame's image, valid for `ttl_s` seconds."""
        expires = int(time.time() if now_s is None else now_s) + self.ttl_s
        path = IMAGE_PATH.format(frame_id=frame_id)
        return SignedImage(
            f"{path}?expires={expires}&sig={self._signature(frame_id, expires)}", expires
        )

    def check(
        self, frame_id: str, expires_s: int, signature: str, *, now_s: float | None = None
    ) -> None:
        """Accept a URL that this API signed and that has not expired; else `SignedUrlError`."""
        if FRAME_ID.fullmatch(frame_id) is None:
            msg = "not a frame id: frame ids are 64 lowercase hex digits"
            raise SignedUrlError(msg)
        if not hmac.compare_digest(
            self._signature(frame_id, expires_s).encode(), signature.encode(errors="replace")
        ):
            msg = "the image URL's signature is wrong: use the URL exactly as the imagery query returned it"
            raise SignedUrlError(msg)
        if (time.time() if now_s is None else now_s) > expires_s:
            msg = "the image URL has expired: run the imagery query again for a fresh URL"
            raise SignedUrlError(msg)
