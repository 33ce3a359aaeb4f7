"""Frame images straight from S3/MinIO: a presigned GET with a short expiry.

When the object store is S3 or MinIO the image bytes need not pass through the API: an imagery
answer carries a presigned GET for the frame's object, signed (SigV4) for that one object, made on
the public endpoint (its host is part of the signature) and valid for `image_url_ttl_s` seconds.
S3 and MinIO refuse it once it has expired or when any part of it is changed. The test server
(moto) checks neither, so the tests check the URL's terms and that it fetches the image.

The API's own signed URL (signing.py) stays for the folder store, and its route keeps answering.
Unlike that route, a presigned GET hands out the bytes without the API checking their sha256
first: frames were checked when they were ingested (and audited), and S3 keeps its own checksums.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from minio import Minio

from ingest.services import public_s3_client
from ingest.settings import IngestSettings
from mapbuilder.serve.settings import ServeSettings


@dataclass(frozen=True)
class PresignedImage:
    """A URL to a frame's image on S3 and when it expires (Unix seconds)."""

    url: str
    expires_s: int


@dataclass(frozen=True)
class ImagePresigner:
    """Presigns GETs of frame images in one bucket, through a client on the public endpoint."""

    client: Minio
    bucket: str
    ttl_s: int

    def sign(self, object_key: str, *, now_s: float | None = None) -> PresignedImage:
        """A GET of the object valid for `ttl_s` seconds from now (no request to S3 is made)."""
        now = datetime.now(UTC) if now_s is None else datetime.fromtimestamp(now_s, UTC)
        now = now.replace(microsecond=0)  # SigV4 dates have whole seconds
        url = self.client.presigned_get_object(
            self.bucket, object_key, expires=timedelta(seconds=self.ttl_s), request_date=now
        )
        return PresignedImage(url, int(now.timestamp()) + self.ttl_s)


def open_presigner(ingest: IngestSettings, settings: ServeSettings) -> ImagePresigner | None:
    """A presigner when the store is S3/MinIO (`ROADSWARM_S3_ENDPOINT`), else None."""
    if not ingest.s3_endpoint:
        return None
    client, _ = public_s3_client(ingest)
    return ImagePresigner(client, ingest.s3_bucket, settings.image_url_ttl_s)
