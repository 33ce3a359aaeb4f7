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

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

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


def road_lanes(road: MatchedRoad, local: LocalFrame | None = None) -> list[LaneLine]:
    """The centres of the lanes of `road` in the direction it was driven, rightmost first; none
    when that direction's lanes cannot be told apart from the other's (an odd number of lanes
    on a two-way road). Offsets are made in `local` (one near the road: making a frame costs
    milliseconds), by default one at the road's start."""
    per_direction = road.lanes if road.oneway else road.lanes / 2
    if per_direction < 1 or per_direction != int(per_direction) or len(road.lonlat) < 2:
        return []
    count = int(per_direction)
    lon = np.array([p[0] for p in road.lonlat], np.float64)
    lat = np.array([p[1] for p in road.lonlat], np.float64)
    if road.direction == BACKWARD:
        lon, lat = lon[::-1], lat[::-1]
    local = local or LocalFrame(float(lon[0]), float(lat[0]))
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
    """The lane centres of the roads (in the order the sequence first matched them); where one
    road's lane runs straight on into the next road's (an OSM way is split at every side
    street, footway and bus stop), they are one line, so the ends left out around junctions
    (`lane_constraints`' end margin) are only where the car turned. Roads matched apart are not
    joined: a road the car reached later, after a turn, may still line up with this one."""
    start = next((road.lonlat[0] for road in roads if road.lonlat), None)
    if start is None:
        return []
    local = LocalFrame(*start)
    lines: dict[LaneLine, int] = {}  # each line, and the road it came from first
    for k, road in enumerate(roads):
        for line in road_lanes(road, local):
            lines.setdefault(line, k)
    return _joined_straight(list(lines), list(lines.values()), local)


JOIN_GAP_M = 0.5
JOIN_MAX_TURN_DEG = 15.0


def _joined_straight(
    lines: list[LaneLine], road_of: list[int], local: LocalFrame
) -> list[LaneLine]:
    """`lines` with each chain that continues straight on from one road into the next (by
    `road_of`, the order of the roads) made one line."""
    xy = [np.stack(local.to_local(np.array(ln.lon), np.array(ln.lat)), axis=1) for ln in lines]
    following = _successors(lines, road_of, xy)
    taken = set(following.values())
    joined = []
    for first in (k for k in range(len(lines)) if k not in taken):
        chain = [first]
        while chain[-1] in following:
            chain.append(following[chain[-1]])
        points = np.concatenate([xy[chain[0]], *(xy[k][1:] for k in chain[1:])])
        lon, lat = local.to_wgs84(points[:, 0], points[:, 1])
        joined.append(replace(lines[first], lon=tuple(lon.tolist()), lat=tuple(lat.tolist())))
    return joined


def _successors(lines: list[LaneLine], road_of: list[int], xy: list[FloatArray]) -> dict[int, int]:
    """For each line, the line of the next road (if any) that continues it straight on."""
    of_road: dict[int, list[int]] = {}
    for k, road in enumerate(road_of):
        of_road.setdefault(road, []).append(k)
    following: dict[int, int] = {}
    taken: set[int] = set()
    for a, points in enumerate(xy):
        for b in of_road.get(road_of[a] + 1, []):
            if b not in taken and _continues(lines[a], lines[b]) and _straight_on(points, xy[b]):
                following[a] = b
                taken.add(b)
                break
    return following


def _continues(a: LaneLine, b: LaneLine) -> bool:
    """The same lane of roads alike (place, count, width)."""
    return (a.from_right, a.lanes, a.lane_width_m) == (b.from_right, b.lanes, b.lane_width_m)


def _straight_on(a: FloatArray, b: FloatArray) -> bool:
    """Line `b` starts where `a` ends and heads on within `JOIN_MAX_TURN_DEG`."""
    if np.hypot(*(a[-1] - b[0])) > JOIN_GAP_M:
        return False
    out, into = a[-1] - a[-2], b[1] - b[0]
    cos = float(out @ into) / max(float(np.linalg.norm(out) * np.linalg.norm(into)), 1e-9)
    return cos >= math.cos(math.radians(JOIN_MAX_TURN_DEG))


def offset_right(xy: FloatArray, offset_m: float) -> FloatArray:
    """A polyline (local metres, one vertex a row) moved `offset_m` to its right (vertex normals
    averaged over both neighbouring edges)."""
    tangent = np.gradient(xy, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    right = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    return np.asarray(xy + right * offset_m, np.float64)
