"""Accepted frames the tile stage could not read: quarantined, reported, and taken off the map.

An accepted frame's object can go missing or change in the store long after ingest checked it
(bit rot, a lost disk, an operator's mistake). When a builder meets one it quarantines the frame
with the reason (`object_missing`, `hash_mismatch`, `undecodable`) and what was found, so the
operator sees it in `ops quarantine list` and the metrics, and rewards stop counting it; every
imagery, coverage and freshness tile the frame touched is marked, to be rebuilt without it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import select

from ingest.catalog import FrameState, utcnow
from ingest.imagecheck import Rejection
from ingest.states import frames_in_state, quarantine
from mapbuilder.catalog import FrameMatch
from mapbuilder.layers.marking import segment_tiles
from mapbuilder.tiles.bev import FramePose
from mapbuilder.tiles.catalog import FramePoseRow
from mapbuilder.tiles.context import IMAGERY, TileContext
from mapbuilder.tiles.dirty import mark_dirty
from mapbuilder.tiles.frames import FrameUnreadableError
from mapbuilder.tiles.mercator import Tile
from mapbuilder.tiles.posing import footprint_tiles

log = logging.getLogger(__name__)


def quarantine_unreadable(
    ctx: TileContext, errors: Mapping[str, FrameUnreadableError]
) -> list[str]:
    """Quarantine the accepted frames among `errors` (frame id: what reading it raised) and mark
    the tiles they touched; return the ids this call quarantined (another builder may have)."""
    ids = sorted(errors)
    with ctx.catalog.session() as session:
        frames = frames_in_state(session, ids, FrameState.ACCEPTED)
        segments = set(
            session.scalars(
                select(FrameMatch.segment_id).where(
                    FrameMatch.frame_id.in_(ids), FrameMatch.segment_id.is_not(None)
                )
            )
        )
    footprints = _footprints(ctx, [f.frame_id for f in frames])
    layer_tiles = segment_tiles(ctx.catalog, {s for s in segments if s is not None})
    done = []
    now = utcnow()
    with ctx.catalog.session() as session:
        for frame in frames:
            error = errors[frame.frame_id]
            rejection = Rejection(error.reason, str(error))
            if quarantine(session, frame, rejection, expected=FrameState.ACCEPTED, now=now):
                log.error("frame %s quarantined (%s): %s", frame.frame_id, error.reason, error)
                done.append(frame.frame_id)
        if done:
            mark_dirty(session, IMAGERY, footprints, now)
            for name, tiles in layer_tiles.items():
                mark_dirty(session, name, tiles, now)
    return done


def _footprints(ctx: TileContext, frame_ids: list[str]) -> set[Tile]:
    """The top-zoom imagery tiles the posed frames among `frame_ids` can touch."""
    with ctx.catalog.session() as session:
        rows = session.execute(
            select(FramePoseRow.lon, FramePoseRow.lat, FramePoseRow.heading_deg).where(
                FramePoseRow.frame_id.in_(frame_ids)
            )
        ).all()
    tiles: set[Tile] = set()
    for lon, lat, heading in rows:
        tiles.update(footprint_tiles(FramePose(lon, lat, heading, 0.0), ctx.bev))
    return tiles
