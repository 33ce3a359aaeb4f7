"""The quarantine as operators work with it: list, show, release.

Releasing says "this was a false alarm". A frame released from a check before the privacy audit
goes on to the audit; one released from the audit itself (an operator looked at it) is accepted.
Frames whose bytes are wrong or missing cannot be released: there is nothing valid to publish.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ingest.catalog import Frame, FrameState, Quarantine
from ingest.db import Catalog
from ingest.errors import IngestError, NotFoundError

UNRELEASABLE = {
    "object_missing": "the object is not in the store",
    "hash_mismatch": "the object's bytes are not the frame's",
    "undecodable": "the object is not a readable image",
    "not_jpeg": "the object is not a JPEG",
    "decompression_bomb": "the image is too large to decode safely",
}
AUDIT_REASONS = {"unblurred_face", "unblurred_plate"}


class ReleaseRefusedError(IngestError):
    """A quarantine entry that cannot be released, with the reason."""


@dataclass(frozen=True)
class QuarantineEntry:
    """One quarantine row as shown to operators."""

    id: int
    frame_id: str
    device_id: str
    batch_counter: int
    reason: str
    detail: str
    created_at: datetime
    released_at: datetime | None
    released_by: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields (times as ISO strings)."""
        return {
            **self.__dict__,
            "created_at": self.created_at.isoformat(),
            "released_at": self.released_at.isoformat() if self.released_at else None,
        }


def _entry(row: Quarantine) -> QuarantineEntry:
    return QuarantineEntry(
        row.id,
        row.frame_id,
        row.device_id,
        row.batch_counter,
        row.reason,
        row.detail,
        row.created_at,
        row.released_at,
        row.released_by,
    )


def list_quarantine(
    catalog: Catalog,
    *,
    reason: str | None = None,
    device_id: str | None = None,
    include_released: bool = False,
    limit: int = 100,
) -> list[QuarantineEntry]:
    """Quarantine entries, newest first, filtered as asked."""
    query = select(Quarantine).order_by(Quarantine.created_at.desc(), Quarantine.id.desc())
    if reason:
        query = query.where(Quarantine.reason == reason)
    if device_id:
        query = query.where(Quarantine.device_id == device_id)
    if not include_released:
        query = query.where(Quarantine.released_at.is_(None))
    with catalog.session() as session:
        return [_entry(row) for row in session.scalars(query.limit(limit))]


def show_quarantine(catalog: Catalog, entry_id: int) -> dict[str, Any]:
    """One entry with the frame's record and where its object is."""
    with catalog.session() as session:
        row = session.get(Quarantine, entry_id)
        if row is None:
            msg = f"no quarantine entry {entry_id}: see `roadswarm ops quarantine list`"
            raise NotFoundError(msg)
        frame = session.get(Frame, row.frame_id)
        shown = _entry(row).to_json()
        if frame is not None:
            shown["frame"] = {
                "object_key": frame.object_key,
                "state": frame.state.value,
                "owner_device_id": frame.device_id,
                "capture_time": frame.capture_time.isoformat(),
                "lat": frame.lat,
                "lon": frame.lon,
                "sequence_id": frame.sequence_id,
                "index": frame.sequence_index,
            }
        return shown


def release(catalog: Catalog, entry_id: int, *, by: str, now: datetime) -> dict[str, Any]:
    """Release an entry; return the frame's new state. Refused for frames with bad bytes."""
    with catalog.session() as session:
        row = session.get(Quarantine, entry_id)
        if row is None:
            msg = f"no quarantine entry {entry_id}: see `roadswarm ops quarantine list`"
            raise NotFoundError(msg)
        if row.released_at is not None:
            msg = f"entry {entry_id} was released at {row.released_at.isoformat()} by {row.released_by}"
            raise ReleaseRefusedError(msg)
        if row.reason in UNRELEASABLE:
            msg = f"entry {entry_id} cannot be released: {UNRELEASABLE[row.reason]}; the device must upload it again"
            raise ReleaseRefusedError(msg)
        frame = session.get(Frame, row.frame_id)
        owned = frame is not None and frame.device_id == row.device_id
        if frame is None or not owned or frame.state != FrameState.QUARANTINED:
            msg = f"entry {entry_id} has no quarantined frame of its own to release (another device's copy is cataloged)"
            raise ReleaseRefusedError(msg)
        row.released_at, row.released_by = now, by
        frame.state = FrameState.ACCEPTED if row.reason in AUDIT_REASONS else FrameState.VALIDATED
        frame.state_since = now
        return {"id": entry_id, "frame_id": frame.frame_id, "state": frame.state.value}
