"""Uploads through presigned POST policies to an S3 server (moto on loopback). Moto enforces none of
the policy (key, length, sha256 metadata), so these tests show that our own checks catch what a
misbehaving device sends anyway."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from minio import Minio

from ingest.catalog import utcnow
from ingest.commit import commit_batch
from ingest.db import Catalog
from ingest.devices import register_device
from ingest.errors import BatchRejectedError
from ingest.protocol import Registration, UploadItem, frame_object_key
from ingest.s3 import S3ObjectStore
from ingest.uploads import S3UploadSigner
from ingest.validate import IngestContext, validate_frames
from tests.ingest_helpers import FakeDevice, frame_id, make_jpeg


@pytest.fixture
def store(s3_endpoint: str, request: pytest.FixtureRequest) -> S3ObjectStore:
    """A bucket of this test's own."""
    client = Minio(
        s3_endpoint, access_key="test", secret_key="test", secure=False, region="us-east-1"
    )
    return S3ObjectStore(client, f"frames-{request.node.name.replace('_', '-')[:40].lower()}")


def _signer(store: S3ObjectStore, s3_endpoint: str) -> S3UploadSigner:
    return S3UploadSigner(store.client, store.bucket, f"http://{s3_endpoint}")


def _post(
    signer: S3UploadSigner, object_key: str, item: UploadItem, data: bytes, **changes: str
) -> int:
    ticket = signer.ticket(object_key, item, utcnow() + timedelta(minutes=5))
    fields = {**ticket.fields, **changes}
    return httpx.post(ticket.url, data=fields, files={"file": ("f.jpg", data)}).status_code


def test_presigned_post_uploads_with_the_sha256_metadata(
    store: S3ObjectStore, s3_endpoint: str
) -> None:
    """A ticket's form uploads the frame, and the store reads back its declared sha256."""
    data = make_jpeg(1)
    key = frame_object_key("a" * 64, frame_id(data))
    item = UploadItem(frame_id=frame_id(data), size_bytes=len(data))
    assert _post(_signer(store, s3_endpoint), key, item, data) in (200, 201, 204)
    stored = store.head(key)
    assert stored is not None and (stored.size, stored.sha256) == (len(data), frame_id(data))
    assert store.get_bytes(key) == data


def test_our_checks_catch_what_the_server_let_through(
    store: S3ObjectStore, s3_endpoint: str, sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    """Other bytes under a ticket: refused at commit when the size is off, quarantined by the
    worker when only the content differs; an upload to another key never counts."""
    device = FakeDevice()
    info, _ = register_device(sqlite_catalog, Registration(**device.registration()), now=utcnow())
    signer = _signer(store, s3_endpoint)
    honest, resized, forged = make_jpeg(1), make_jpeg(2), make_jpeg(3)
    items = {
        f: UploadItem(frame_id=frame_id(f), size_bytes=len(f)) for f in (honest, resized, forged)
    }
    key = {f: frame_object_key(device.device_id, frame_id(f)) for f in items}
    assert _post(signer, key[honest], items[honest], honest) in (200, 201, 204)
    # A real MinIO refuses these two uploads (length range, key); moto stores them.
    _post(signer, key[resized], items[resized], resized + b"padding")
    _post(signer, key[forged], items[forged], honest, key=f"frames/{'0' * 64}/elsewhere.jpg")
    with pytest.raises(BatchRejectedError, match=r"is stored with \d+ bytes"):
        commit_batch(
            sqlite_catalog, store, info, device.manifest(device.entries([resized])), utcnow()
        )
    with pytest.raises(BatchRejectedError, match="is not uploaded"):
        commit_batch(
            sqlite_catalog, store, info, device.manifest(device.entries([forged])), utcnow()
        )
    # Same length, other bytes, and the sha256 claim the policy required: only the worker can tell.
    tampered = bytearray(forged)
    tampered[-100] ^= 0xFF
    store.client.put_object(
        store.bucket,
        key[forged],
        io.BytesIO(bytes(tampered)),
        len(tampered),
        metadata={"sha256": frame_id(forged)},
    )
    signed = device.manifest(device.entries([honest, forged]))
    new_ids = commit_batch(sqlite_catalog, store, info, signed, utcnow()).new_frame_ids
    result = validate_frames(IngestContext(sqlite_catalog, store), new_ids)
    assert result.advanced == [frame_id(honest)]
    assert result.quarantined == {frame_id(forged): "hash_mismatch"}
