"""Rebuild the coverage and freshness tiles that changed segments touch, through the tile store.

Dirty tiles are tracked in the catalog's `map_tiles` table, shared with the imagery layer
(`mapbuilder.tiles.dirty`): new matches mark the tiles of their segments at every zoom of both
layers, and a build clears a mark only if nothing marked the tile again meanwhile. Every zoom is
drawn from the catalog (not from the zoom above), since lines and colours do not downsample.

A tile is drawn from every segment near it (not only the changed ones), so a rebuild is
idempotent: the same catalog gives the same bytes, and a tile whose bytes did not change is not
written again. A tile no road reaches any more is deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select

from ingest.db import Catalog
from mapbuilder.errors import CorruptTile
from mapbuilder.layers.freshness import render_freshness_tile
from mapbuilder.layers.marking import LAYER_NAMES, grown, mark_segments_dirty
from mapbuilder.layers.stats import SegmentCoverage, SegmentWeights, load_coverage
from mapbuilder.layers.vector import encode_coverage_tile
from mapbuilder.roads.segment import BBox
from mapbuilder.tiles.catalog import TileRow
from mapbuilder.tiles.dirty import BuiltTile, record_built
from mapbuilder.tiles.layers import layer
from mapbuilder.tiles.mercator import Tile
from mapbuilder.tiles.store import TileStore, etag_of

log = logging.getLogger(__name__)


@dataclass
class LayerBuild:
    """What one build did, per layer: tiles marked, written, already identical, removed."""

    marked: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)


class _Segments:
    """Loaded segments with their boxes as arrays, to pick those near a tile quickly."""

    def __init__(self, segments: Sequence[SegmentCoverage], weights: SegmentWeights) -> None:
        self.segments = list(segments)
        self.weights = [float(w) for w in weights(self.segments)] if self.segments else []
        corners = [(*np.min(s.lonlat, axis=0), *np.max(s.lonlat, axis=0)) for s in self.segments]
        self.boxes: NDArray[np.float64] = np.array(corners, np.float64).reshape(-1, 4)

    def near(self, box: BBox) -> tuple[list[SegmentCoverage], list[float]]:
        """Segments whose boxes touch `box`, with their weights."""
        west, south, east, north = box
        b = self.boxes
        hit = (b[:, 2] >= west) & (b[:, 0] <= east) & (b[:, 3] >= south) & (b[:, 1] <= north)
        index = np.flatnonzero(hit)
        return [self.segments[i] for i in index], [self.weights[i] for i in index]


def _union(boxes: Iterable[BBox]) -> BBox:
    west, south, east, north = zip(*boxes, strict=True)
    return min(west), min(south), max(east), max(north)


def render_tile(
    layer_name: str,
    tile: Tile,
    segments: Sequence[SegmentCoverage],
    weights: Sequence[float],
    now: datetime,
) -> bytes | None:
    """One tile's bytes from the segments near it (None: no road reaches it)."""
    if layer_name == "coverage":
        return encode_coverage_tile(tile, segments, weights)
    return render_freshness_tile(tile, segments, now)


def _store(tiles: TileStore, layer_name: str, tile: Tile, data: bytes | None) -> str:
    """Write, keep or remove one tile; say which. A stored tile is read and checked, so a
    corrupt one is rewritten even when its recorded ETag equals the new bytes'."""
    try:
        stored = tiles.get(layer_name, tile)
    except CorruptTile as error:
        log.warning("%s: rewriting it", error)
        stored = None
    if data is None:
        if tiles.head(layer_name, tile) is None:
            return "none"
        tiles.delete(layer_name, tile)
        return "removed"
    if stored is not None and stored.etag == etag_of(data):
        return "unchanged"
    tiles.put(layer_name, tile, data)
    return "written"


def _dirty_at(catalog: Catalog, layer_name: str, zoom: int) -> dict[Tile, int]:
    """The dirty tiles of one zoom with the dirty count their build starts from."""
    with catalog.session() as session:
        rows = session.execute(
            select(TileRow.x, TileRow.y, TileRow.dirty_version).where(
                TileRow.layer == layer_name, TileRow.z == zoom, TileRow.dirty_since.is_not(None)
            )
        ).all()
    return {(zoom, int(x), int(y)): int(version) for x, y, version in rows}


def _build_zoom(
    catalog: Catalog,
    tiles: TileStore,
    layer_name: str,
    zoom: int,
    *,
    weights: SegmentWeights,
    now: datetime,
    result: LayerBuild,
) -> None:
    """Build the dirty tiles of one zoom of a layer and record them (counts in `result`)."""
    dirty = _dirty_at(catalog, layer_name, zoom)
    if not dirty:
        return
    near = _Segments(load_coverage(catalog, _union(grown(layer_name, t) for t in dirty)), weights)
    built = []
    for tile, version in sorted(dirty.items()):
        segments, segment_weights = near.near(grown(layer_name, tile))
        data = render_tile(layer_name, tile, segments, segment_weights, now)
        outcome = _store(tiles, layer_name, tile, data)
        if outcome != "none":
            getattr(result, outcome)[layer_name] += 1
        etag = None if data is None else etag_of(data)
        built.append(BuiltTile(tile, etag, len(segments), version))
    with catalog.session() as session:
        record_built(session, layer_name, built, now)


def build_dirty(
    catalog: Catalog,
    tiles: TileStore,
    *,
    weights: SegmentWeights,
    now: datetime,
    layers: Sequence[str] = LAYER_NAMES,
    min_zoom: int = 0,
    result: LayerBuild | None = None,
) -> LayerBuild:
    """Build every dirty tile of `layers` from the highest zoom down to `min_zoom` (a changed
    tile marks its parent dirty, which is then built in the same pass; below `min_zoom` the marks
    stay for a later build)."""
    result = result or LayerBuild()
    for name in layers:
        spec = layer(name)
        for counts in (result.written, result.unchanged, result.removed):
            counts.setdefault(name, 0)
        for zoom in range(spec.max_zoom, max(spec.min_zoom, min_zoom) - 1, -1):
            _build_zoom(catalog, tiles, name, zoom, weights=weights, now=now, result=result)
    return result


def rebuild_layers(
    catalog: Catalog,
    tiles: TileStore,
    *,
    segment_ids: Collection[str] | None,
    weights: SegmentWeights,
    now: datetime,
    layers: Sequence[str] = LAYER_NAMES,
) -> LayerBuild:
    """Mark the tiles of these segments (None: all) and build everything dirty in `layers`."""
    marked = mark_segments_dirty(catalog, segment_ids, now=now, tiles=tiles, layers=layers)
    return build_dirty(
        catalog, tiles, weights=weights, now=now, layers=layers, result=LayerBuild(marked=marked)
    )
