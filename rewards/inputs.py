"""Reading an epoch's inputs from the catalog into arrays, with plain SQL (no ORM objects).

What counts: frames in state `accepted`, matched onto a segment, captured inside the epoch and
received before its cutoff (end + grace period, or the forced close time). History for freshness
is every such frame captured before the epoch, received before the same cutoff, so recomputing a
closed epoch later reads exactly the same rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import BigInteger, ColumnElement, Index, String, cast, extract, func, select
from sqlalchemy.orm import Session

from ingest.catalog import Frame, FrameState
from mapbuilder.catalog import FrameMatch, RoadSegmentRow
from rewards.arrays import (
    EpochFrames,
    FloatArray,
    History,
    IntArray,
    SegmentTable,
    frame_id_matrix,
)
from rewards.epochs import Epoch
from rewards.errors import RewardsError
from rewards.pgcopy import copy_frames, copy_history

POSIX_ZERO = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
PENDING = (FrameState.RECEIVED, FrameState.VALIDATED)

# Epochs select frames by state and capture time; declared here (created by migration 0003) so
# autogenerating a later revision knows the index exists.
Index("frames_state_capture_time", Frame.state, Frame.capture_time)


def posix_ms(moment: datetime) -> int:
    """Exact integer milliseconds since 1970 UTC."""
    return (moment - POSIX_ZERO) // MILLISECOND


def load_segments(session: Session) -> SegmentTable:
    """Every segment ever imported (retired ones too: old matches still point at them)."""
    rows = session.execute(
        select(
            RoadSegmentRow.segment_id,
            RoadSegmentRow.length_m,
            RoadSegmentRow.road_class,
            RoadSegmentRow.min_lon,
            RoadSegmentRow.max_lon,
            RoadSegmentRow.min_lat,
            RoadSegmentRow.max_lat,
        ).order_by(RoadSegmentRow.segment_id)
    ).all()
    box = np.array([r[3:] for r in rows], np.float64).reshape(-1, 4)
    return SegmentTable(
        segment_ids=[r[0] for r in rows],
        length_m=np.array([r[1] for r in rows], np.float64),
        road_class=[r[2] for r in rows],
        center_lon=(box[:, 0] + box[:, 1]) / 2,
        center_lat=(box[:, 2] + box[:, 3]) / 2,
    )


def _counted(received_before: datetime) -> list[Any]:
    return [
        Frame.state == FrameState.ACCEPTED,
        FrameMatch.segment_id.is_not(None),
        Frame.received_at < received_before,
    ]


def _time_column(session: Session) -> ColumnElement[Any]:
    """Capture times as the database gives them fastest: integer milliseconds from PostgreSQL,
    the stored text from SQLite (parsed by numpy); never a Python datetime per row."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(extract("epoch", Frame.capture_time) * 1000), BigInteger)
    return cast(Frame.capture_time, String)


def _milliseconds(values: list[Any]) -> IntArray:
    if values and isinstance(values[0], str):
        micro = np.array(values, dtype="datetime64[us]").astype(np.int64)
        return np.asarray(micro // 1000, np.int64)
    return np.array(values, np.int64)


def _codes(values: list[str], index: dict[str, int]) -> NDArray[np.int32]:
    try:
        return np.fromiter((index[v] for v in values), np.int32, count=len(values))
    except KeyError as exc:
        msg = f"frames are matched to segment {exc} that the catalog's road_segments lacks: import the network they were matched on"
        raise RewardsError(msg) from exc


def _floats(values: list[float | None]) -> FloatArray:
    return np.array([np.nan if v is None else v for v in values], np.float64)


def load_frames(
    session: Session,
    epoch: Epoch,
    received_before: datetime,
    segments: SegmentTable,
    *,
    excluded: frozenset[str] = frozenset(),
) -> EpochFrames:
    """The frames the epoch counts, as arrays (`excluded`: frames still pending when it closed)."""
    if session.get_bind().dialect.name == "postgresql":
        records, devices = copy_frames(session, epoch, received_before)
        if excluded:
            drop = np.array(sorted(bytes.fromhex(f) for f in excluded), "S32")
            records = records[~np.isin(records["frame_id"], drop)]
        return frames_from_records(records, devices)
    found = (
        session.connection()
        .execute(
            select(
                Frame.frame_id,
                Frame.device_id,
                _time_column(session),
                Frame.hdop,
                FrameMatch.segment_id,
                FrameMatch.direction,
                FrameMatch.offset_m,
                FrameMatch.distance_m,
            )
            .join(FrameMatch, FrameMatch.frame_id == Frame.frame_id)
            .where(*_counted(received_before))
            .where(Frame.capture_time >= epoch.start, Frame.capture_time < epoch.end)
        )
        .all()
    )
    rows = [r for r in found if r[0] not in excluded] if excluded else found
    columns: list[list[Any]] = [list(c) for c in zip(*rows, strict=True)] or [[] for _ in range(8)]
    ids, devices_of, times, hdop, segment, direction, offset, distance = columns
    devices = sorted(set(devices_of))
    return EpochFrames(
        devices=devices,
        device=_codes(devices_of, {d: i for i, d in enumerate(devices)}),
        segment=_codes(segment, segments.index()),
        direction=np.array([d == "backward" for d in direction], np.int8),
        offset_m=np.nan_to_num(_floats(offset)),
        distance_m=np.nan_to_num(_floats(distance)),
        hdop=_floats(hdop),
        time_ms=_milliseconds(times),
        frame_ids=frame_id_matrix(ids),
    )


def load_history(
    session: Session, epoch: Epoch, received_before: datetime, segments: SegmentTable
) -> History:
    """Where and when the frames captured before the epoch were."""
    if session.get_bind().dialect.name == "postgresql":
        return history_from_records(copy_history(session, epoch, received_before))
    rows = (
        session.connection()
        .execute(
            select(
                FrameMatch.segment_id,
                FrameMatch.direction,
                FrameMatch.offset_m,
                _time_column(session),
            )
            .join(FrameMatch, FrameMatch.frame_id == Frame.frame_id)
            .where(*_counted(received_before))
            .where(Frame.capture_time < epoch.start)
        )
        .all()
    )
    columns: list[list[Any]] = [list(c) for c in zip(*rows, strict=True)] or [[] for _ in range(4)]
    segment, direction, offset, times = columns
    return History(
        segment=_codes(segment, segments.index()),
        direction=np.array([d == "backward" for d in direction], np.int8),
        offset_m=np.nan_to_num(_floats(offset)),
        time_ms=_milliseconds(times),
    )


def pending_frames(session: Session, epoch: Epoch, received_before: datetime) -> list[str]:
    """Frames of the epoch still being validated, audited or matched (they would count later)."""
    window = (
        Frame.received_at < received_before,
        Frame.capture_time >= epoch.start,
        Frame.capture_time < epoch.end,
    )
    pending = session.scalars(select(Frame.frame_id).where(Frame.state.in_(PENDING), *window))
    unmatched = session.scalars(
        select(Frame.frame_id)
        .outerjoin(FrameMatch, FrameMatch.frame_id == Frame.frame_id)
        .where(Frame.state == FrameState.ACCEPTED, FrameMatch.frame_id.is_(None), *window)
    )
    return sorted({*pending, *unmatched})


def frames_from_records(records: NDArray[np.void], all_devices: list[str]) -> EpochFrames:
    """Arrays from COPY records whose device codes rank every registered device: renumbered over
    the devices that have frames, as the generic path numbers them."""
    used, device = np.unique(records["device"].astype(np.int64), return_inverse=True)
    ids = np.frombuffer(records["frame_id"].tobytes(), np.uint8).reshape(len(records), 32)
    return EpochFrames(
        devices=[all_devices[i] for i in used.tolist()],
        device=device.astype(np.int32),
        segment=records["segment"].astype(np.int32),
        direction=records["direction"].astype(np.int8),
        offset_m=records["offset_m"].astype(np.float64),
        distance_m=records["distance_m"].astype(np.float64),
        hdop=records["hdop"].astype(np.float64),
        time_ms=records["time_ms"].astype(np.int64),
        frame_ids=ids,
    )


def history_from_records(records: NDArray[np.void]) -> History:
    """History arrays from COPY records."""
    return History(
        segment=records["segment"].astype(np.int32),
        direction=records["direction"].astype(np.int8),
        offset_m=records["offset_m"].astype(np.float64),
        time_ms=records["time_ms"].astype(np.int64),
    )
