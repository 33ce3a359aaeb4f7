"""The `coverage` layer as Mapbox Vector Tiles: one line feature per road segment.

Geometry is in tile units (extent 4096, y down, integers), clipped to the tile grown by a buffer
so that lines drawn with a width join seamlessly across tile edges. Properties are numbers and ISO
strings only (MVT has no null: a property that has no value is left out):

- `segment_id`, `road_class`, `oneway` (bool), `length_m`
- `coverage`: share of the drivable length captured (one-way: forward only; else the mean of both
  directions), and `coverage_forward` / `coverage_backward` (the latter on two-way roads only)
- `captures`: distinct passes (device, sequence) over the segment
- `last_capture` (ISO 8601, UTC) and `last_capture_unix` (seconds), absent when never captured
- `reward_weight`: the segment's weight in the rewards (metres x road-class factor x region
  multiplier: what one full-freshness pass of one direction is worth, in points)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import mapbox_vector_tile
import numpy as np
import shapely
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

from mapbuilder.layers.geometry import tile_px
from mapbuilder.layers.stats import SegmentCoverage
from mapbuilder.tiles.mercator import TILE_PX, Tile

LAYER_NAME = "coverage"
EXTENT = 4096
BUFFER = 64  # tile units (4 px of a 256 px tile): enough for the widest line style
BUFFER_PX = BUFFER * TILE_PX / EXTENT
FIELDS: dict[str, str] = {
    "segment_id": "String",
    "road_class": "String",
    "oneway": "Boolean",
    "length_m": "Number",
    "coverage": "Number",
    "coverage_forward": "Number",
    "coverage_backward": "Number",
    "captures": "Number",
    "last_capture": "String",
    "last_capture_unix": "Number",
    "reward_weight": "Number",
}
"""The layer's attributes as TileJSON's `vector_layers` lists them."""


def feature_id(segment_id: str) -> int:
    """A stable numeric feature id (52 bits, exact in JavaScript) for a segment id."""
    return int(hashlib.sha256(segment_id.encode()).hexdigest()[:13], 16)


def properties(segment: SegmentCoverage, weight: float) -> dict[str, Any]:
    """The feature properties of one segment (see the module docstring)."""
    props: dict[str, Any] = {
        "segment_id": segment.segment_id,
        "road_class": segment.road_class,
        "oneway": segment.oneway,
        "length_m": round(segment.length_m, 1),
        "coverage": round(segment.coverage, 4),
        "coverage_forward": round(segment.coverage_in("forward"), 4),
        "captures": segment.captures,
        "reward_weight": round(weight, 3),
    }
    if not segment.oneway:
        props["coverage_backward"] = round(segment.coverage_in("backward"), 4)
    last = segment.last_capture
    if last is not None:
        props["last_capture"] = last.isoformat().replace("+00:00", "Z")
        props["last_capture_unix"] = int(last.timestamp())
    return props


def clipped_line(segment: SegmentCoverage, tile: Tile) -> BaseGeometry | None:
    """The segment in integer tile units, clipped to the buffered tile; None when outside."""
    points = np.round(tile_px(segment.lonlat, tile, EXTENT / TILE_PX))
    keep = np.concatenate([[True], np.any(np.diff(points, axis=0) != 0, axis=1)])
    points = points[keep]
    if len(points) < 2:
        return None
    clipped = shapely.clip_by_rect(
        LineString(points), -BUFFER, -BUFFER, EXTENT + BUFFER, EXTENT + BUFFER
    )
    if clipped.is_empty or clipped.length == 0:
        return None
    return clipped


def encode_coverage_tile(
    tile: Tile, segments: Sequence[SegmentCoverage], weights: Sequence[float]
) -> bytes | None:
    """The MVT bytes of `tile` for these segments (sorted by id for byte-identical output);
    None when none of them reaches the tile."""
    features = []
    for segment, weight in sorted(
        zip(segments, weights, strict=True), key=lambda pair: pair[0].segment_id
    ):
        line = clipped_line(segment, tile)
        if line is not None:
            features.append(
                {
                    "geometry": line,
                    "properties": properties(segment, weight),
                    "id": feature_id(segment.segment_id),
                }
            )
    if not features:
        return None
    data: bytes = mapbox_vector_tile.encode(
        [{"name": LAYER_NAME, "features": features}],
        default_options={"extents": EXTENT, "y_coord_down": True},
    )
    return data
