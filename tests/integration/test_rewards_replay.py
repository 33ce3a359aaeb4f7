"""Anti-fraud end to end: a device replaying another's frames (exact bytes, or re-encoded) is
quarantined by ingest and earns nothing, even where its copies were matched onto roads."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from ingest.audit import audit_frames
from ingest.catalog import utcnow
from ingest.commit import commit_batch
from ingest.db import Catalog
from ingest.devices import register_device
from ingest.protocol import FrameEntry, Registration, frame_object_key
from ingest.quarantine import list_quarantine
from ingest.settings import ValidationSettings
from ingest.storage import LocalObjectStore
from ingest.validate import IngestContext, validate_frames
from rewards.close import close_epoch
from rewards.epochs import Epoch
from rewards.settings import RewardParams
from tests.ingest_helpers import FakeDevice, frame_id, make_jpeg
from tests.integration.test_ingest_pipeline import MarkerScanner
from tests.rewards_helpers import match_along, store_segments


def _reencoded(data: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


def _commit(
    ctx: IngestContext, device: FakeDevice, frames: list[bytes], entries: list[FrameEntry]
) -> list[str]:
    info, _ = register_device(ctx.catalog, Registration(**device.registration()), now=utcnow())
    for data in frames:
        ctx.store.put_bytes(frame_object_key(device.device_id, frame_id(data)), data)
    return commit_batch(
        ctx.catalog, ctx.store, info, device.manifest(entries), utcnow()
    ).new_frame_ids


def test_a_replaying_device_gains_nothing(catalog: Catalog, tmp_path: Path) -> None:
    """Exact copies are quarantined at commit, re-encoded ones by validation; the epoch pays only
    the device that really drove."""
    ctx = IngestContext(catalog, LocalObjectStore(tmp_path / "store"), ValidationSettings())
    store_segments(catalog, utcnow())
    honest, replayer = FakeDevice(), FakeDevice(Ed25519PrivateKey.generate())
    originals = [make_jpeg(40 + i) for i in range(4)]
    honest_ids = _commit(ctx, honest, originals, honest.entries(originals))
    assert sorted(validate_frames(ctx, honest_ids).advanced) == sorted(honest_ids)
    assert sorted(audit_frames(ctx, MarkerScanner(), honest_ids).advanced) == sorted(honest_ids)

    copies = [_reencoded(data) for data in originals[:3]]
    replayed = [*copies, originals[3]]
    entries = replayer.entries(replayed, sequence_id="replay")
    copy_ids = _commit(ctx, replayer, replayed, entries)
    assert len(copy_ids) == 3  # the exact copy never became a frame of the replayer's
    assert set(validate_frames(ctx, copy_ids).quarantined.values()) == {
        "near_duplicate_other_device"
    }
    reasons = {(e.device_id, e.reason) for e in list_quarantine(catalog)}
    assert (replayer.device_id, "duplicate_of_other_device") in reasons

    # Even matched onto the same road as the originals, the copies must not count.
    first = honest.entries(originals)[0].capture_time
    match_along(catalog, [*honest_ids, *copy_ids], "seg-a", utcnow())
    epoch = Epoch.containing(first)
    closed = close_epoch(
        catalog,
        epoch,
        RewardParams(),
        key=Ed25519PrivateKey.generate(),
        code_version="test",
        now=utcnow() + timedelta(seconds=1),
        force=True,
    )
    devices = {d["device_id"]: d for d in closed.record.body()["details"]["devices"]}
    assert set(devices) == {honest.device_id}
    assert devices[honest.device_id]["gross"] == str(RewardParams().pool_base_units)
    assert closed.record.body()["statement"]["frames"] == len(honest_ids)
