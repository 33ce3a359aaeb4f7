"""Which coverage and freshness tiles a change touches, marked dirty in the catalog's
`map_tiles` table (shared with the imagery layer, `mapbuilder.tiles.dirty`).

A segment marks every tile it can draw into at every zoom of both layers: the vector layer's lines
reach a buffer beyond the tile, the freshness lines half a road's width.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select

from ingest.catalog import Frame, FrameState
from ingest.db import Catalog
from ingest.states import SequenceKey
from mapbuilder.catalog import FrameMatch, RoadSegmentRow
from mapbuilder.layers.freshness import RAMP
from mapbuilder.layers.geometry import tile_box, tiles_touching
from mapbuilder.layers.vector import BUFFER_PX
from mapbuilder.roads.segment import BBox
from mapbuilder.tiles.dirty import mark_dirty
from mapbuilder.tiles.layers import layer
from mapbuilder.tiles.mercator import Tile, px_per_metre
from mapbuilder.tiles.store import TileStore

LAYER_NAMES = ("coverage", "freshness")
# Freshness lines are as wide as the road: a tile also draws roads up to this far outside it.
MAX_HALF_WIDTH_M = 30.0

Line = tuple[tuple[float, float], ...]


def margin_px(layer_name: str, zoom: int, lat: float) -> float:
    """How far outside a tile a segment can still draw into it."""
    if layer_name == "coverage":
        return BUFFER_PX
    return MAX_HALF_WIDTH_M * px_per_metre(lat, zoom) + 2.0


def grown(layer_name: str, tile: Tile) -> BBox:
    """The tile's box grown by the layer's margin."""
    lat = tile_box(tile, margin_px=0)[1]
    return tile_box(tile, margin_px=margin_px(layer_name, tile[0], lat))


def segment_lines(catalog: Catalog, segment_ids: Collection[str] | None) -> list[Line]:
    """The lines of these segments (retired ones too: their old tiles must lose them), or of
    every active segment when None."""
    query = select(RoadSegmentRow.lonlat)
    if segment_ids is None:
        query = query.where(RoadSegmentRow.retired_at.is_(None))
    else:
        query = query.where(RoadSegmentRow.segment_id.in_(sorted(segment_ids)))
    with catalog.session() as session:
        texts = session.scalars(query).all()
    return [tuple((float(lon), float(lat)) for lon, lat in json.loads(text)) for text in texts]


def tiles_of_lines(lines: Iterable[Line], layer_name: str) -> list[Tile]:
    """Every tile of the layer's zooms that one of `lines` can draw into, in a fixed order."""
    spec = layer(layer_name)
    found: set[Tile] = set()
    for line in lines:
        for zoom in range(spec.min_zoom, spec.max_zoom + 1):
            margin = margin_px(layer_name, zoom, line[0][1])
            found.update(tiles_touching(line, zoom, margin_px=margin))
    return sorted(found)


def mark_segments_dirty(
    catalog: Catalog,
    segment_ids: Collection[str] | None,
    *,
    now: datetime,
    tiles: TileStore | None = None,
    layers: Sequence[str] = LAYER_NAMES,
) -> dict[str, int]:
    """Mark the tiles these segments touch (None: every active segment's, and with `tiles` also
    every stored tile, so stale ones are removed); return how many per layer."""
    wanted = segment_tiles(catalog, segment_ids, layers)
    marked = {}
    for name in layers:
        if segment_ids is None and tiles is not None:
            wanted[name].update(tiles.list(name))
        with catalog.session() as session:
            marked[name] = mark_dirty(session, name, wanted[name], now)
    return marked


def segment_tiles(
    catalog: Catalog, segment_ids: Collection[str] | None, layers: Sequence[str] = LAYER_NAMES
) -> dict[str, set[Tile]]:
    """Per layer, the tiles these segments (None: every active one) can draw into."""
    lines = segment_lines(catalog, segment_ids)
    return {name: set(tiles_of_lines(lines, name)) for name in layers}


def segments_of_sequences(catalog: Catalog, keys: Sequence[SequenceKey]) -> set[str]:
    """The segments the accepted frames of these (device, sequence) pairs are matched to."""
    found: set[str | None] = set()
    with catalog.session() as session:
        for device_id, sequence_id in keys:
            found.update(
                session.scalars(
                    select(FrameMatch.segment_id)
                    .join(Frame, Frame.frame_id == FrameMatch.frame_id)
                    .where(
                        Frame.device_id == device_id,
                        Frame.sequence_id == sequence_id,
                        FrameMatch.segment_id.is_not(None),
                    )
                    .distinct()
                ).all()
            )
    return {segment for segment in found if segment is not None}


def segments_aging(catalog: Catalog, *, now: datetime, window: timedelta) -> set[str]:
    """Segments with an accepted capture whose age crossed a freshness bucket's bound within
    `window` before `now`: their freshness tiles change colour without any new capture."""
    bounds = [timedelta(days=b.max_age_days) for b in RAMP[:-1]]
    crossed = [
        and_(Frame.capture_time > now - bound - window, Frame.capture_time <= now - bound)
        for bound in bounds
    ]
    with catalog.session() as session:
        found = session.scalars(
            select(FrameMatch.segment_id)
            .join(Frame, Frame.frame_id == FrameMatch.frame_id)
            .where(
                Frame.state == FrameState.ACCEPTED,
                FrameMatch.segment_id.is_not(None),
                or_(*crossed),
            )
            .distinct()
        ).all()
    return {segment for segment in found if segment is not None}
