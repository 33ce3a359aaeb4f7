"""The matching stage: accepted frames, a sequence at a time, onto the catalog's road network.

A whole sequence is matched each time (the HMM needs the frames around a point), and the result
replaces what an earlier, shorter run of the sequence gave: matching is idempotent and only gets
better as a drive's later batches arrive.

Two workers may match one sequence at once (its batches arrive close together), and the one that
read fewer frames may store last. So after storing, a matcher reads the sequence's frames again
and, if they changed since it read them, matches it again: the last to store always ends with
the whole sequence, and the result is what one run over all its frames gives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select

from ingest.catalog import Frame, FrameState, utcnow
from ingest.db import Catalog
from ingest.states import SequenceKey, accepted_of, record_run
from mapbuilder.catalog import FrameMatch, save_matches
from mapbuilder.layers.marking import segment_tiles
from mapbuilder.matching.matcher import MapMatcher
from mapbuilder.tiles.dirty import mark_dirty

STAGE = "match"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Matched:
    """Frames matched by one call, and how many of them landed on a segment."""

    frames: int
    on_segment: int


# Rounds of matching a sequence again whose frames changed while it was matched: each round
# means another batch arrived meanwhile, so a chain this long means something keeps changing.
MAX_MATCH_ROUNDS = 10
_FrameRow = tuple[str, float, float, datetime, float]


def match_sequences(catalog: Catalog, matcher: MapMatcher, keys: Sequence[SequenceKey]) -> Matched:
    """Match every accepted frame of each sequence and store where each one lies."""
    started = time.perf_counter()
    frames = on_segment = 0
    for key in keys:
        matched, landed = _match_sequence(catalog, matcher, key)
        frames, on_segment = frames + matched, on_segment + landed
    with catalog.session() as session:
        record_run(session, STAGE, frames, time.perf_counter() - started, utcnow())
    return Matched(frames, on_segment)


def _match_sequence(catalog: Catalog, matcher: MapMatcher, key: SequenceKey) -> tuple[int, int]:
    """Match one sequence, again while its frames change under it (see the module doc); the
    frames of the last match stored, and how many of them landed on a segment."""
    rows = _accepted_frames(catalog, key)
    matched = landed = 0
    for _ in range(MAX_MATCH_ROUNDS):
        if not rows:
            break
        matched, landed = len(rows), _match_and_store(catalog, matcher, rows)
        now_there = _accepted_frames(catalog, key)
        if now_there == rows:
            break
        rows = now_there
    else:
        log.warning(
            "sequence %s/%s still changed after %d rounds of matching: its next batch matches "
            "it again",
            *key,
            MAX_MATCH_ROUNDS,
        )
    return matched, landed


def _accepted_frames(catalog: Catalog, key: SequenceKey) -> list[_FrameRow]:
    """What matching reads of a sequence: its accepted frames in order, with their fixes."""
    with catalog.session() as session:
        rows = session.execute(
            select(Frame.frame_id, Frame.lon, Frame.lat, Frame.capture_time, Frame.heading_deg)
            .where(*accepted_of(key))
            .order_by(Frame.sequence_index)
        ).all()
    return [(fid, lon, lat, when, heading) for fid, lon, lat, when, heading in rows]


def _match_and_store(catalog: Catalog, matcher: MapMatcher, rows: Sequence[_FrameRow]) -> int:
    """Match one sequence's frames and store the matches; how many landed on a segment."""
    ids, lon, lat, when, heading = zip(*rows, strict=True)
    result = matcher.match(
        np.array(lon),
        np.array(lat),
        np.array([t.timestamp() for t in when]),
        heading_deg=np.array(heading),
    )
    now = utcnow()
    matches = [
        {
            "frame_id": frame_id,
            "segment_id": point.segment_id if point else None,
            "direction": point.direction if point else None,
            "offset_m": round(point.offset_m, 2) if point else None,
            "distance_m": round(point.distance_m, 2) if point else None,
            "matched_at": now,
        }
        for frame_id, point in zip(ids, result.points, strict=True)
    ]
    # The coverage and freshness tiles of the matched segments are marked in the same
    # transaction: if the `layers.update` queued after this is lost, the sweep finds them.
    segments = {point.segment_id for point in result.points if point is not None}
    layer_tiles = segment_tiles(catalog, segments)
    with catalog.session() as session:
        save_matches(session, matches)
        for name, tiles in layer_tiles.items():
            mark_dirty(session, name, tiles, now)
    return sum(point is not None for point in result.points)


def unmatched_sequences(catalog: Catalog, *, accepted_before: datetime) -> list[SequenceKey]:
    """Sequences with a frame accepted before `accepted_before` and never matched: the match
    task queued for it was lost (a broker restart, a worker killed between the audit's commit and
    its message), or the frame was released from quarantine."""
    with catalog.session() as session:
        rows = session.execute(
            select(Frame.device_id, Frame.sequence_id)
            .distinct()
            .outerjoin(FrameMatch, FrameMatch.frame_id == Frame.frame_id)
            .where(
                Frame.state == FrameState.ACCEPTED,
                Frame.state_since < accepted_before,
                FrameMatch.frame_id.is_(None),
            )
            .order_by(Frame.device_id, Frame.sequence_id)
        ).all()
    return [(device, sequence) for device, sequence in rows]
