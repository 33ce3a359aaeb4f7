"""Device identity, signed batch manifests and their counter."""

from __future__ import annotations

import hashlib
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.identity import Identity, IdentityError, create_identity, load_identity
from edge.package import KeyframeRecord
from edge.spool import Spool
from ingest.protocol import ProtocolError, SignedManifest, verify


def test_identity_key_is_private_and_never_replaced(tmp_path: Path) -> None:
    """The private key is mode 600, loads back, and a second init refuses to overwrite it."""
    created = create_identity(tmp_path / "id")
    key_file = tmp_path / "id" / "device.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_identity(tmp_path / "id").device_id == created.device_id
    with pytest.raises(IdentityError, match="already exists"):
        create_identity(tmp_path / "id")


def test_identity_readable_by_others_or_missing_is_refused(tmp_path: Path) -> None:
    """A key other users can read is refused with the chmod to run; a missing one names init."""
    create_identity(tmp_path / "id")
    (tmp_path / "id" / "device.key").chmod(0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_identity(tmp_path / "id")
    with pytest.raises(IdentityError, match="roadswarm edge init"):
        load_identity(tmp_path / "none")


def fake_keyframe(spool: Spool, n: int) -> None:
    data = f"jpeg bytes {n}".encode()
    frame_id = hashlib.sha256(data).hexdigest()
    record = KeyframeRecord(
        frame_id,
        datetime(2026, 6, 1, 6, 0, n, tzinfo=UTC).isoformat(),
        60.17,
        24.94,
        20.0,
        90.0,
        8.0,
        1.1,
        "seq-1",
        n,
        4.0 * n,
        n * 10,
        {"face": "centerface@0123"},
    )
    spool.add(record, data)


@pytest.fixture
def identity(tmp_path: Path) -> Identity:
    """A fresh device identity."""
    return create_identity(tmp_path / "identity")


def test_batches_cover_each_keyframe_once_with_increasing_counters(
    tmp_path: Path, identity: Identity
) -> None:
    """Sealed batches take keyframes in order, each once, counters 1, 2, 3 - and on after reopening."""
    with Spool(tmp_path / "spool") as spool:
        for n in range(5):
            fake_keyframe(spool, n)
        batches = [spool.seal_batch(identity, max_frames=2) for _ in range(4)]
    assert batches[3] is None
    sealed = [b for b in batches if b is not None]
    assert [b.manifest.counter for b in sealed] == [1, 2, 3]
    frames = [f.frame_id for b in sealed for f in b.manifest.frames]
    assert len(frames) == len(set(frames)) == 5
    with Spool(tmp_path / "spool") as spool:
        fake_keyframe(spool, 9)
        later = spool.seal_batch(identity)
        assert later is not None and later.manifest.counter == 4
        assert [b.manifest.counter for b in spool.sealed_batches()] == [1, 2, 3, 4]
        assert spool.status()["batches_sealed"] == 4


def test_signed_manifest_verifies_and_detects_tampering(tmp_path: Path, identity: Identity) -> None:
    """The device's key verifies its manifest; any change to it, or another key, is refused."""
    with Spool(tmp_path / "spool") as spool:
        fake_keyframe(spool, 1)
        signed = spool.seal_batch(identity)
    assert signed is not None
    assert verify(signed, identity.public_key).counter == 1
    replayed = signed.model_copy(
        update={"manifest": signed.manifest.model_copy(update={"counter": 7})}
    )
    with pytest.raises(ProtocolError, match="does not match"):
        verify(replayed, identity.public_key)
    frame = signed.manifest.frames[0].model_copy(update={"frame_id": "0" * 64})
    swapped = signed.model_copy(
        update={"manifest": signed.manifest.model_copy(update={"frames": [frame]})}
    )
    with pytest.raises(ProtocolError):
        verify(swapped, identity.public_key)
    with pytest.raises(ProtocolError, match="device other than"):
        verify(signed, Ed25519PrivateKey.generate().public_key())
    assert SignedManifest.model_validate_json(signed.model_dump_json()) == signed
    assert signed.manifest.frames[0].size_bytes == len(b"jpeg bytes 1")
