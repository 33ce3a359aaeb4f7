"""Lane lines for pose refinement, from the road segments a sequence was matched to.

A frame matched to a segment in some direction was driven in a lane of that direction. Where
that direction has a single lane (a two-way road of two lanes, a one-way road of one), its
centre is known from the segment's centreline and width: half a lane right of the centre on a
two-way road, the centreline on a one-way one. Where a direction has several lanes, which one
the car was in is not known, and a wrong guess would pull the imagery a lane's width sideways,
so such segments give no lane line.
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


def lane_line(road: MatchedRoad) -> LaneLine | None:
    """The centre of the lane the car drove in on `road`, or None when it cannot be known (several
    lanes in its direction, or a single lane shared by both directions)."""
    per_direction = road.lanes if road.oneway else road.lanes / 2
    if per_direction != 1 or len(road.lonlat) < 2:
        return None
    lon = np.array([p[0] for p in road.lonlat], np.float64)
    lat = np.array([p[1] for p in road.lonlat], np.float64)
    if road.direction == BACKWARD:
        lon, lat = lon[::-1], lat[::-1]
    local = LocalFrame(float(lon[0]), float(lat[0]))
    x, y = local.to_local(lon, lat)
    lane_width = road.width_m / road.lanes
    offset = 0.0 if road.oneway else road.width_m / 2 - lane_width / 2
    shifted = offset_right(np.stack([x, y], axis=1), offset)
    out_lon, out_lat = local.to_wgs84(shifted[:, 0], shifted[:, 1])
    return LaneLine(tuple(out_lon.tolist()), tuple(out_lat.tolist()))


def lane_lines(roads: Sequence[MatchedRoad]) -> list[LaneLine]:
    """The lane lines of the roads that have one, in the order given."""
    return [line for road in roads if (line := lane_line(road)) is not None]


def offset_right(xy: FloatArray, offset_m: float) -> FloatArray:
    """A polyline (local metres, one vertex a row) moved `offset_m` to its right (vertex normals
    averaged over both neighbouring edges)."""
    tangent = np.gradient(xy, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    right = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    return np.asarray(xy + right * offset_m, np.float64)
