"""Tests of `ingest.storage`: the object store interface and its folder-backed implementation."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ingest.errors import IngestError, InvalidObjectKeyError, ObjectNotFoundError
from ingest.storage import (
    DEFAULT_CONTENT_TYPE,
    META_DIR,
    LocalObjectStore,
    ObjectStore,
    StoredObject,
    validate_key,
)


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    """An empty store in a temporary folder."""
    return LocalObjectStore(tmp_path / "objects")


def _sha256(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def test_local_store_implements_the_interface(store: LocalObjectStore) -> None:
    """The folder-backed store is an `ObjectStore`."""
    assert isinstance(store, ObjectStore)


def test_put_bytes_round_trip(store: LocalObjectStore) -> None:
    """Bytes put under a key come back unchanged, with their size, hash and content type."""
    data = b"\xff\xd8 jpeg bytes"
    stored = store.put_bytes("frames/ab/abcd.jpg", data, content_type="image/jpeg")
    assert stored == StoredObject("frames/ab/abcd.jpg", len(data), _sha256(data), "image/jpeg")
    assert store.get_bytes("frames/ab/abcd.jpg") == data
    assert store.head("frames/ab/abcd.jpg") == stored
    assert store.exists("frames/ab/abcd.jpg")


def test_put_file_round_trip_in_chunks(store: LocalObjectStore, tmp_path: Path) -> None:
    """A file larger than one copy chunk is stored whole with the right hash."""
    data = bytes(range(256)) * 10_000  # 2.5 MB: several 1 MiB chunks
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    stored = store.put_file("blobs/big.bin", source)
    assert stored.sha256 == _sha256(data)
    assert stored.size == len(data)
    assert stored.content_type == DEFAULT_CONTENT_TYPE
    assert store.get_bytes("blobs/big.bin") == data


def test_overwrite_updates_hash_and_content_type(store: LocalObjectStore) -> None:
    """Writing a key again replaces the object and its metadata."""
    store.put_bytes("m.json", b"old", content_type="text/plain")
    stored = store.put_bytes("m.json", b"newer", content_type="application/json")
    assert store.head("m.json") == stored
    assert stored.sha256 == _sha256(b"newer")
    assert store.get_bytes("m.json") == b"newer"


def test_atomic_write_leaves_no_temporary_files(store: LocalObjectStore) -> None:
    """After writes and overwrites only the objects and their sidecars are on disk."""
    store.put_bytes("a/b/c.bin", b"1")
    store.put_bytes("a/b/c.bin", b"2")
    store.put_bytes("top.bin", b"3")
    names = sorted(
        p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file()
    )
    assert names == [
        ".meta/a/b/c.bin.meta.json",
        ".meta/top.bin.meta.json",
        "a/b/c.bin",
        "top.bin",
    ]


def test_failed_write_leaves_no_temporary_file(
    store: LocalObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails before its rename leaves neither an object nor a temporary file."""

    def failing_fsync(fd: int) -> None:
        """Fail as a full or failing disk would."""
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        store.put_bytes("x/y.bin", b"data")
    assert not store.exists("x/y.bin")
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    "key",
    [
        "",
        "../x",
        "a/../../b",
        "a/./b",
        "/etc/passwd",
        "a\\b",
        "..\\x",
        "a\x00b",
        "a\nb",
        "a//b",
        "a/",
        ".meta/x.meta.json",
        "a/.hidden",
        "k" * 1025,
    ],
)
def test_invalid_keys_are_rejected(store: LocalObjectStore, key: str) -> None:
    """Keys that are empty, escape the store, or use reserved or control characters raise."""
    with pytest.raises(InvalidObjectKeyError, match="Invalid object key"):
        store.put_bytes(key, b"x")
    with pytest.raises(InvalidObjectKeyError):
        store.get_bytes(key)
    with pytest.raises(InvalidObjectKeyError):
        store.head(key)
    with pytest.raises(InvalidObjectKeyError):
        store.delete(key)


def test_traversal_writes_nothing_outside_the_store(tmp_path: Path) -> None:
    """A rejected traversal key creates no file beside the store."""
    store = LocalObjectStore(tmp_path / "objects")
    with pytest.raises(InvalidObjectKeyError):
        store.put_bytes("../escaped.bin", b"x")
    assert not (tmp_path / "escaped.bin").exists()


def test_invalid_key_error_is_an_ingest_error() -> None:
    """Store errors derive from the package's base error and say what to do."""
    with pytest.raises(IngestError, match="Use a relative '/'-separated key"):
        validate_key("/abs")


def test_key_of_1024_bytes_is_accepted() -> None:
    """The S3 key-length limit itself is allowed."""
    key = "/".join(["k" * 100] * 10) + "/" + "k" * 14
    assert len(key) == 1024
    assert validate_key(key) == key


def test_list_by_prefix_excludes_metadata(store: LocalObjectStore) -> None:
    """Listing yields only objects under the prefix, sorted, never sidecars or temp files."""
    for key in ("frames/b.jpg", "frames/a.jpg", "framesets/x.json", "tiles/1/2/3.png"):
        store.put_bytes(key, key.encode())
    (store.root / "frames" / ".c.jpg.abc.tmp").write_bytes(b"partial write")
    assert [obj.key for obj in store.list("frames/")] == ["frames/a.jpg", "frames/b.jpg"]
    assert [obj.key for obj in store.list("frames")] == [
        "frames/a.jpg",
        "frames/b.jpg",
        "framesets/x.json",
    ]
    assert len(list(store.list())) == 4
    assert not any(META_DIR in obj.key for obj in store.list())
    assert list(store.list("nothing/here")) == []


def test_list_rejects_a_traversal_prefix(store: LocalObjectStore) -> None:
    """A prefix that could leave the store is refused when `list` is called."""
    with pytest.raises(InvalidObjectKeyError, match="prefix"):
        store.list("../")


def test_missing_key_raises_not_found(store: LocalObjectStore) -> None:
    """Reading a key that was never written raises `ObjectNotFoundError`; head says None."""
    with pytest.raises(ObjectNotFoundError, match=r"No object 'frames/none\.jpg'"):
        store.get_bytes("frames/none.jpg")
    assert store.head("frames/none.jpg") is None
    assert not store.exists("frames/none.jpg")


def test_delete_removes_object_and_is_idempotent(store: LocalObjectStore) -> None:
    """Deleting removes the object and its folders; deleting again is not an error."""
    store.put_bytes("a/b/c.bin", b"1")
    store.delete("a/b/c.bin")
    store.delete("a/b/c.bin")
    assert not store.exists("a/b/c.bin")
    assert list(store.root.rglob("*")) == [store.root / META_DIR]
    store.put_bytes("a", b"a folder was pruned, so this key fits")


def test_key_clashing_with_a_folder_is_refused(store: LocalObjectStore) -> None:
    """A key cannot be both an object and a folder of other objects."""
    store.put_bytes("a/b", b"1")
    with pytest.raises(InvalidObjectKeyError, match="clashes"):
        store.put_bytes("a", b"2")
    with pytest.raises(InvalidObjectKeyError, match="clashes"):
        store.put_bytes("a/b/c", b"3")


def test_stale_sidecar_is_rebuilt(store: LocalObjectStore) -> None:
    """An object replaced behind the store's back (as after a crash) gets its true hash."""
    store.put_bytes("x.bin", b"before", content_type="text/plain")
    (store.root / "x.bin").write_bytes(b"after a crash")
    stored = store.head("x.bin")
    assert stored == StoredObject("x.bin", 13, _sha256(b"after a crash"), "text/plain")


def test_missing_sidecar_is_rebuilt(store: LocalObjectStore) -> None:
    """An object whose sidecar was lost is still described, with the default content type."""
    store.put_bytes("x.bin", b"data", content_type="text/plain")
    (store.root / META_DIR / "x.bin.meta.json").unlink()
    assert store.head("x.bin") == StoredObject("x.bin", 4, _sha256(b"data"), DEFAULT_CONTENT_TYPE)
