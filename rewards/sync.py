"""Bringing device registrations and finished batches from the catalog into the ledger.

A batch is recorded once none of its frames is still being checked, as the Merkle root of the ids
of its accepted frames; `ledger verify` computes the same bodies again from the catalog.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from ingest.catalog import Batch, Device, Frame, FrameState
from ingest.db import Catalog
from rewards.ledger import append, chain, head, recorded_keys
from rewards.merkle import merkle_root

BATCH_TAG = b"roadswarm-batch-frames-v1"
CHUNK = 400
Item = tuple[str, str, dict[str, Any]]


def batch_key(device_id: str, counter: int) -> str:
    """A batch's key in the ledger."""
    return f"{device_id}:{counter}"


def device_body(device: Device) -> dict[str, Any]:
    """What the ledger records of a registration."""
    return {
        "device_id": device.device_id,
        "public_key": device.public_key,
        "registered_at": device.registered_at.isoformat(),
    }


def accepted_root(frame_ids: list[str]) -> str:
    """Merkle root of accepted frame ids (sorted, raw bytes as leaves)."""
    return merkle_root(BATCH_TAG, [bytes.fromhex(f) for f in sorted(frame_ids)]).hex()


def batch_body(batch: Batch, accepted: list[str]) -> dict[str, Any]:
    """What the ledger records of a finished batch."""
    return {
        "device_id": batch.device_id,
        "counter": batch.counter,
        "manifest_sha256": batch.manifest_sha256,
        "committed_at": batch.committed_at.isoformat(),
        "frames": batch.frame_count,
        "accepted": len(accepted),
        "accepted_root": accepted_root(accepted),
    }


def batch_frames(
    session: Session, keys: list[tuple[str, int]]
) -> dict[tuple[str, int], list[tuple[str, FrameState]]]:
    """Frame ids and states of the given batches."""
    found: dict[tuple[str, int], list[tuple[str, FrameState]]] = defaultdict(list)
    for i in range(0, len(keys), CHUNK):
        rows = session.execute(
            select(Frame.device_id, Frame.batch_counter, Frame.frame_id, Frame.state).where(
                tuple_(Frame.device_id, Frame.batch_counter).in_(keys[i : i + CHUNK])
            )
        )
        for device_id, counter, frame_id, state in rows:
            found[(device_id, counter)].append((frame_id, state))
    return found


def _finished(frames: list[tuple[str, FrameState]]) -> bool:
    return all(state not in (FrameState.RECEIVED, FrameState.VALIDATED) for _, state in frames)


def pending_items(session: Session) -> list[Item]:
    """Ledger items for registrations and finished batches not yet recorded, oldest first."""
    known = recorded_keys(session, "device")
    devices = session.scalars(select(Device).order_by(Device.registered_at, Device.device_id))
    items: list[Item] = [
        ("device", d.device_id, device_body(d)) for d in devices if d.device_id not in known
    ]
    known = recorded_keys(session, "batch")
    batches = [
        b
        for b in session.scalars(
            select(Batch).order_by(Batch.committed_at, Batch.device_id, Batch.counter)
        )
        if batch_key(b.device_id, b.counter) not in known
    ]
    frames = batch_frames(session, [(b.device_id, b.counter) for b in batches])
    for batch in batches:
        members = frames.get((batch.device_id, batch.counter), [])
        if _finished(members):
            accepted = [f for f, state in members if state == FrameState.ACCEPTED]
            items.append(
                ("batch", batch_key(batch.device_id, batch.counter), batch_body(batch, accepted))
            )
    return items


def sync_ledger(catalog: Catalog, now: datetime) -> int:
    """Append what the ledger lacks; the number of records appended."""
    with catalog.session() as session:
        start = head(session)
        items = pending_items(session)
    append(catalog, chain(start, items, now), expected_head=start[1])
    return len(items)
