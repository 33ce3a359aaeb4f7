"""Committing a batch: the moment the server takes responsibility for a device's frames.

Everything is checked before anything is written (signature, counter, every object), then the
batch, its frames and the device's new counter go into the catalog in one transaction. A commit
sent again after a lost acknowledgement gets the same receipt and changes nothing.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ingest.catalog import Batch, Camera, Device, Frame, FrameState, Quarantine
from ingest.db import Catalog
from ingest.devices import DeviceInfo
from ingest.errors import AuthenticationError, BatchRejectedError, ReplayError
from ingest.protocol import (
    BatchManifest,
    CommitReceipt,
    FrameEntry,
    ProtocolError,
    SignedManifest,
    frame_object_key,
    load_public_key,
    verify,
)
from ingest.storage import ObjectStore

DUPLICATE_OF_OTHER_DEVICE = "duplicate_of_other_device"


@dataclass(frozen=True)
class Committed:
    """The receipt for the device, and the frames that now wait for validation."""

    receipt: CommitReceipt
    new_frame_ids: list[str]


def commit_batch(
    catalog: Catalog, store: ObjectStore, device: DeviceInfo, signed: SignedManifest, now: datetime
) -> Committed:
    """Check a signed manifest against the device and the store, then catalog its frames."""
    manifest = _verified(device, signed)
    digest = hashlib.sha256(signed.manifest.canonical()).hexdigest()
    repeat = _repeat_of(catalog, device.device_id, manifest.counter, digest)
    if repeat is not None:
        return Committed(repeat, [])
    _check_objects(store, device.device_id, manifest.frames)
    with catalog.session() as session:
        # Lock the device row: two concurrent commits of one device are serialised here.
        row = session.scalars(
            select(Device).where(Device.device_id == device.device_id).with_for_update()
        ).one()
        if manifest.counter <= row.last_counter:
            msg = (
                f"batch counter {manifest.counter} is not above this device's last committed "
                f"counter {row.last_counter}: a replayed or reordered manifest is refused"
            )
            raise ReplayError(msg)
        _add_cameras(session, manifest, now)
        new_ids = _add_frames(session, manifest, now)
        session.add(
            Batch(
                device_id=device.device_id,
                counter=manifest.counter,
                manifest_sha256=digest,
                signed_manifest=signed.model_dump_json(),
                frame_count=len(manifest.frames),
                committed_at=now,
            )
        )
        row.last_counter = manifest.counter
    receipt = CommitReceipt(
        device_id=device.device_id,
        counter=manifest.counter,
        frames=len(manifest.frames),
        already_committed=False,
    )
    return Committed(receipt, new_ids)


def _verified(device: DeviceInfo, signed: SignedManifest) -> BatchManifest:
    if signed.manifest.device_id != device.device_id:
        msg = "the manifest names another device than the one signing the request"
        raise AuthenticationError(msg)
    try:
        manifest = verify(signed, load_public_key(device.public_key))
    except ProtocolError as exc:
        raise AuthenticationError(str(exc)) from exc
    repeated = [fid for fid, n in Counter(f.frame_id for f in manifest.frames).items() if n > 1]
    if repeated:
        msg = f"the manifest lists frame {repeated[0][:12]} more than once: list each frame once"
        raise BatchRejectedError(msg)
    return manifest


def _repeat_of(catalog: Catalog, device_id: str, counter: int, digest: str) -> CommitReceipt | None:
    """The receipt of an identical batch committed before; a different one with this counter is
    a replay."""
    with catalog.session() as session:
        batch = session.get(Batch, (device_id, counter))
        if batch is None:
            return None
        if batch.manifest_sha256 != digest:
            msg = f"counter {counter} was already used by another manifest of this device: refused"
            raise ReplayError(msg)
        return CommitReceipt(
            device_id=device_id, counter=counter, frames=batch.frame_count, already_committed=True
        )


def _check_objects(store: ObjectStore, device_id: str, frames: list[FrameEntry]) -> None:
    """Every frame's object is in the device's prefix with the size and sha256 it declares."""
    problems = []
    for entry in frames:
        stored = store.head(frame_object_key(device_id, entry.frame_id))
        if stored is None:
            problems.append(f"{entry.frame_id[:12]} is not uploaded")
        elif stored.size != entry.size_bytes or stored.sha256 != entry.frame_id:
            problems.append(
                f"{entry.frame_id[:12]} is stored with {stored.size} bytes and sha256 "
                f"{stored.sha256[:12]}, not {entry.size_bytes} bytes and its id"
            )
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        msg = f"batch refused, upload these frames again and commit: {shown}"
        raise BatchRejectedError(msg)


def _add_cameras(session: Session, manifest: BatchManifest, now: datetime) -> None:
    """Record the calibrations the manifest carries that the catalog does not know yet."""
    if not manifest.cameras:
        return
    rows = [
        {
            "camera_id": camera_id,
            "calibration": calibration.model_dump(mode="json"),
            "first_seen": now,
        }
        for camera_id, calibration in sorted(manifest.cameras.items())
    ]
    # ON CONFLICT, not look-then-add: devices sharing a camera model commit concurrently, and
    # the second insert of one calibration failed the whole commit (found by the soak test).
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(Camera).on_conflict_do_nothing(index_elements=["camera_id"])
    session.execute(statement, rows)


def _add_frames(session: Session, manifest: BatchManifest, now: datetime) -> list[str]:
    """Insert the frames not cataloged yet; one another device sent first is quarantined."""
    ids = [entry.frame_id for entry in manifest.frames]
    owners = dict(
        session.execute(
            select(Frame.frame_id, Frame.device_id).where(Frame.frame_id.in_(ids))
        ).all()
    )
    new_ids = []
    for entry in manifest.frames:
        owner = owners.get(entry.frame_id)
        if owner is None:
            session.add(_frame_row(manifest, entry, now))
            new_ids.append(entry.frame_id)
        elif owner != manifest.device_id:
            session.add(
                Quarantine(
                    frame_id=entry.frame_id,
                    device_id=manifest.device_id,
                    batch_counter=manifest.counter,
                    reason=DUPLICATE_OF_OTHER_DEVICE,
                    detail=f"device {owner[:12]} committed these exact bytes first",
                    created_at=now,
                )
            )
    return new_ids


def _frame_row(manifest: BatchManifest, entry: FrameEntry, now: datetime) -> Frame:
    return Frame(
        frame_id=entry.frame_id,
        device_id=manifest.device_id,
        batch_counter=manifest.counter,
        object_key=frame_object_key(manifest.device_id, entry.frame_id),
        size_bytes=entry.size_bytes,
        sequence_id=entry.sequence_id,
        sequence_index=entry.index,
        capture_time=entry.capture_time,
        lat=entry.lat,
        lon=entry.lon,
        altitude_m=entry.altitude_m,
        heading_deg=entry.heading_deg,
        speed_mps=entry.speed_mps,
        hdop=entry.hdop,
        travelled_m=entry.travelled_m,
        model_versions=dict(entry.model_versions),
        camera_id=entry.camera_id,
        state=FrameState.RECEIVED,
        state_since=now,
        attempts=0,
        received_at=now,
    )
