"""Lane lines for pose refinement, from the road segments a sequence was matched to.

A frame matched to a segment in some direction was driven in a lane of that direction. Each
lane's centre is known from the segment's centreline and width: on a two-way road the
direction's lanes fill the right half, on a one-way road all of it. Where that direction has a
single lane, the car was in it. Where it has several, which one is not known from the map, and a
wrong guess would pull the imagery a lane's width sideways: each lane's line is tagged with its
place from the right, and a frame is held only to the one its own imagery shows it in
(`markings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mapbuilder.geo import LocalFrame
from mapbuilder.tiles.constraints import LaneLine

FloatArray = NDArray[np.float64]
BACKWARD = "backward"


@dataclass(frozen=True)
class MatchedRoad:
    """A segment a sequence was matched to, the direction it was driven in, and its shape."""

    segment_id: str
    direction: str
    lonlat: Sequence[tuple[float, float]]
    oneway: bool
    lanes: int
    width_m: float


def road_lanes(road: MatchedRoad) -> list[LaneLine]:
    """The centres of the lanes of `road` in the direction it was driven, rightmost first; none
    when that direction's lanes cannot be told apart from the other's (an odd number of lanes
    on a two-way road)."""
    per_direction = road.lanes if road.oneway else road.lanes / 2
    if per_direction < 1 or per_direction != int(per_direction) or len(road.lonlat) < 2:
        return []
    count = int(per_direction)
    lon = np.array([p[0] for p in road.lonlat], np.float64)
    lat = np.array([p[1] for p in road.lonlat], np.float64)
    if road.direction == BACKWARD:
        lon, lat = lon[::-1], lat[::-1]
    local = LocalFrame(float(lon[0]), float(lat[0]))
    x, y = local.to_local(lon, lat)
    centreline = np.stack([x, y], axis=1)
    lane_width = road.width_m / road.lanes
    lines = []
    for from_right in range(count):
        # The direction's lanes fill the road's right half, or all of a one-way road.
        shifted = offset_right(centreline, road.width_m / 2 - lane_width * (from_right + 0.5))
        out_lon, out_lat = local.to_wgs84(shifted[:, 0], shifted[:, 1])
        lines.append(
            LaneLine(
                tuple(out_lon.tolist()),
                tuple(out_lat.tolist()),
                from_right if count > 1 else None,
                count,
                lane_width,
            )
        )
    return lines


def lane_lines(roads: Sequence[MatchedRoad]) -> list[LaneLine]:
    """The lane centres of the roads, in the order given."""
    return [line for road in roads for line in road_lanes(road)]


def offset_right(xy: FloatArray, offset_m: float) -> FloatArray:
    """A polyline (local metres, one vertex a row) moved `offset_m` to its right (vertex normals
    averaged over both neighbouring edges)."""
    tangent = np.gradient(xy, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    right = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    return np.asarray(xy + right * offset_m, np.float64)
