"""Imagery queries: published frames in a polygon or on a road segment, in a time window.

Frames are found by their indexed position (a bounding box in SQL, then the exact polygon) and
capture time, optionally filtered by heading, and paged with a keyset cursor over
(capture time, frame id) so that pages stay stable while new frames arrive.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from shapely import contains_xy
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Select, and_, or_, select

from ingest.catalog import Frame, FrameState
from ingest.db import Catalog
from mapbuilder.catalog import FrameMatch
from mapbuilder.serve.errors import BadQueryError

SCAN_FACTOR = 4  # rows read per wanted frame when the polygon or heading may reject some


@dataclass(frozen=True)
class FrameQuery:
    """What to look for: a polygon or a segment, a time window, an optional heading and a page."""

    start: datetime
    end: datetime
    limit: int
    polygon: BaseGeometry | None = None
    segment_id: str | None = None
    heading_deg: float | None = None
    tolerance_deg: float = 45.0
    cursor: str | None = None


@dataclass(frozen=True)
class FrameHit:
    """One published frame, as consumers see it (no device id, no object key)."""

    frame_id: str
    lon: float
    lat: float
    heading_deg: float
    captured_at: datetime
    sequence_id: str
    sequence_index: int
    segment_id: str | None
    object_key: str


def heading_matches(heading: float, target: float, tolerance: float) -> bool:
    """Whether `heading` is within `tolerance` degrees of `target`, wrapping at 0/360."""
    return abs((heading - target + 180.0) % 360.0 - 180.0) <= tolerance


def encode_cursor(hit: FrameHit) -> str:
    """An opaque cursor that resumes after `hit`."""
    raw = f"{hit.captured_at.isoformat()}|{hit.frame_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (capture time, frame id) a cursor resumes after; `BadQueryError` when it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, frame_id = raw.split("|")
        after = datetime.fromisoformat(stamp)
        if after.tzinfo is None:
            raise ValueError(stamp)
        return after.astimezone(UTC), frame_id
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        msg = "the cursor is not one this API returned: pass next_cursor unchanged, or none for the first page"
        raise BadQueryError(msg) from exc


def find_frames(catalog: Catalog, query: FrameQuery) -> tuple[list[FrameHit], str | None]:
    """One page of matching frames, oldest first, and the cursor of the next page (None at the end)."""
    check_window(query.start, query.end)
    after = decode_cursor(query.cursor) if query.cursor else None
    hits: list[FrameHit] = []
    for hit in _scan(catalog, query, after):
        if _keeps(query, hit):
            hits.append(hit)
            if len(hits) == query.limit:
                return hits, encode_cursor(hit)
    return hits, None


def check_window(start: datetime, end: datetime) -> None:
    """A time window must be timezone-aware and run forwards."""
    if start.tzinfo is None or end.tzinfo is None:
        msg = "start and end need a timezone, e.g. 2026-05-01T00:00:00Z"
        raise BadQueryError(msg)
    try:
        start.astimezone(UTC), end.astimezone(UTC)
    except OverflowError as exc:
        msg = "start and end must be real UTC times between the years 1 and 9999"
        raise BadQueryError(msg) from exc
    if end <= start:
        msg = f"the time window is empty: end ({end.isoformat()}) must be after start ({start.isoformat()})"
        raise BadQueryError(msg)


def _keeps(query: FrameQuery, hit: FrameHit) -> bool:
    if query.polygon is not None and not contains_xy(query.polygon, hit.lon, hit.lat):
        return False
    return query.heading_deg is None or heading_matches(
        hit.heading_deg, query.heading_deg, query.tolerance_deg
    )


def _scan(
    catalog: Catalog, query: FrameQuery, after: tuple[datetime, str] | None
) -> Iterator[FrameHit]:
    """Candidate frames in key order, read in chunks."""
    chunk = query.limit * SCAN_FACTOR
    while True:
        with catalog.session() as session:
            rows = session.execute(_select(query, after).limit(chunk)).all()
        hits = [_hit(frame, segment_id) for frame, segment_id in rows]
        yield from hits
        if len(hits) < chunk:
            return
        after = (hits[-1].captured_at, hits[-1].frame_id)


def _select(query: FrameQuery, after: tuple[datetime, str] | None) -> Select[Frame, str | None]:
    statement = (
        select(Frame, FrameMatch.segment_id)
        .outerjoin(FrameMatch, FrameMatch.frame_id == Frame.frame_id)
        .where(
            Frame.state == FrameState.ACCEPTED,
            Frame.capture_time >= query.start,
            Frame.capture_time < query.end,
        )
        .order_by(Frame.capture_time, Frame.frame_id)
    )
    if query.polygon is not None:
        west, south, east, north = query.polygon.bounds
        statement = statement.where(Frame.lon.between(west, east), Frame.lat.between(south, north))
    if query.segment_id is not None:
        statement = statement.where(FrameMatch.segment_id == query.segment_id)
    if after is not None:
        stamp, frame_id = after
        statement = statement.where(
            or_(
                Frame.capture_time > stamp,
                and_(Frame.capture_time == stamp, Frame.frame_id > frame_id),
            )
        )
    return statement


def _hit(frame: Frame, segment_id: str | None) -> FrameHit:
    return FrameHit(
        frame_id=frame.frame_id,
        lon=frame.lon,
        lat=frame.lat,
        heading_deg=frame.heading_deg,
        captured_at=frame.capture_time,
        sequence_id=frame.sequence_id,
        sequence_index=frame.sequence_index,
        segment_id=segment_id,
        object_key=frame.object_key,
    )


def frame_by_id(catalog: Catalog, frame_id: str) -> FrameHit | None:
    """A published frame by id, None when there is none (or it is not accepted)."""
    statement = (
        select(Frame, FrameMatch.segment_id)
        .outerjoin(FrameMatch, FrameMatch.frame_id == Frame.frame_id)
        .where(Frame.frame_id == frame_id, Frame.state == FrameState.ACCEPTED)
    )
    with catalog.session() as session:
        row = session.execute(statement).first()
    return None if row is None else _hit(row[0], row[1])
