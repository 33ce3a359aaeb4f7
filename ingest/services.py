"""Building the catalog, the object store and the upload signer from `IngestSettings`."""

from __future__ import annotations

from urllib.parse import urlsplit

from minio import Minio

from ingest.db import Catalog
from ingest.errors import IngestError
from ingest.s3 import S3ObjectStore
from ingest.settings import IngestSettings
from ingest.storage import LocalObjectStore, ObjectStore
from ingest.uploads import LocalUploadSigner, S3UploadSigner, UploadSigner


def _minio_client(endpoint_url: str, settings: IngestSettings) -> Minio:
    """A client for `http(s)://host:port`; a bare `host:port` uses `ROADSWARM_S3_SECURE`."""
    parts = urlsplit(endpoint_url if "://" in endpoint_url else f"//{endpoint_url}")
    secure = parts.scheme == "https" if parts.scheme else settings.s3_secure
    return Minio(
        parts.netloc,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        secure=secure,
        region=settings.s3_region,
    )


def _endpoint_url(endpoint: str, settings: IngestSettings) -> str:
    if "://" in endpoint:
        return endpoint
    return f"{'https' if settings.s3_secure else 'http'}://{endpoint}"


def open_store(settings: IngestSettings) -> ObjectStore:
    """MinIO/S3 when an endpoint is set, else the folder `ROADSWARM_STORE_DIR`."""
    if settings.s3_endpoint:
        return S3ObjectStore(_minio_client(settings.s3_endpoint, settings), settings.s3_bucket)
    if settings.store_dir is None:
        msg = "no object store: set ROADSWARM_S3_ENDPOINT (MinIO) or ROADSWARM_STORE_DIR (a folder)"
        raise IngestError(msg)
    return LocalObjectStore(settings.store_dir)


def public_s3_client(settings: IngestSettings) -> tuple[Minio, str]:
    """A client on the endpoint devices and map clients reach, and its URL: presigned URLs name
    that host in their signature, so they must be made with it."""
    public = _endpoint_url(settings.s3_public_endpoint or settings.s3_endpoint, settings)
    return _minio_client(public, settings), public


def open_signer(settings: IngestSettings, api_url: str) -> UploadSigner:
    """Presigned POST policies on MinIO/S3, the API's own signed forms for a local store."""
    if settings.s3_endpoint:
        client, public = public_s3_client(settings)
        return S3UploadSigner(client, settings.s3_bucket, public)
    return LocalUploadSigner(settings.upload_secret, api_url)


def open_catalog(settings: IngestSettings, *, migrate_schema: bool = False) -> Catalog:
    """The catalog; only `roadswarm ingest migrate` and the embedded stack migrate by default."""
    return Catalog.connect(settings.database_url, migrate_schema=migrate_schema)
