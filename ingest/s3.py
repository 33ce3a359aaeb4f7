"""The object store on S3 (MinIO in production), through the `minio` SDK.

Every object carries the sha256 of its bytes as user metadata, written with it and checked on every
read: S3-compatible servers (and the moto server the tests use) do not guarantee that for us.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

from minio import Minio
from minio.error import S3Error

from ingest.errors import IngestError, ObjectCorruptError, ObjectNotFoundError
from ingest.storage import (
    DEFAULT_CONTENT_TYPE,
    ObjectStore,
    StoredObject,
    validate_key,
    validate_prefix,
)

SHA256_META = "sha256"
MISSING_CODES = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}


class S3ObjectStore(ObjectStore):
    """Objects in one bucket; the bucket is created if it does not exist."""

    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        try:
            if not client.bucket_exists(bucket):
                client.make_bucket(bucket)
        except S3Error as exc:
            msg = f"cannot use bucket {bucket!r} ({exc.code}): check the credentials and the bucket name"
            raise IngestError(msg) from exc

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredObject:
        validate_key(key)
        sha = hashlib.sha256(data).hexdigest()
        self.client.put_object(
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
            metadata={SHA256_META: sha},
        )
        return StoredObject(key, len(data), sha, content_type)

    def put_file(
        self, key: str, path: Path, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredObject:
        return self.put_bytes(key, path.read_bytes(), content_type=content_type)

    def get_bytes(self, key: str) -> bytes:
        stored = self.head(key)
        if stored is None:
            msg = f"no object {key!r} in bucket {self.bucket!r}"
            raise ObjectNotFoundError(msg)
        response = self.client.get_object(self.bucket, key)
        try:
            data = response.read()
        finally:
            response.close()
            response.release_conn()
        if hashlib.sha256(data).hexdigest() != stored.sha256:
            msg = f"object {key!r} does not match the sha256 recorded when it was written: quarantine it"
            raise ObjectCorruptError(msg)
        return data

    def head(self, key: str) -> StoredObject | None:
        validate_key(key)
        try:
            stat = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in MISSING_CODES:
                return None
            raise
        metadata = {k.lower(): v for k, v in (stat.metadata or {}).items()}
        sha = metadata.get(f"x-amz-meta-{SHA256_META}", "")
        return StoredObject(
            key, int(stat.size or 0), str(sha), str(stat.content_type or DEFAULT_CONTENT_TYPE)
        )

    def delete(self, key: str) -> None:
        validate_key(key)
        self.client.remove_object(self.bucket, key)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        if prefix:
            validate_prefix(prefix)
        for item in self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True):
            stored = self.head(str(item.object_name))
            if stored is not None:
                yield stored
