"""Lane lines from matched road segments: which lanes, on which side, tagged when there are several
in the direction driven, and none where the direction's lanes are unknown."""

from __future__ import annotations

import numpy as np
import pytest

from mapbuilder.geo import LocalFrame
from mapbuilder.tiles.constraints import LaneLine
from mapbuilder.tiles.lanes import MatchedRoad, lane_lines, road_lanes

LON, LAT = 24.9384, 60.1699
LOCAL = LocalFrame(LON, LAT)


def _northward(**kwargs: object) -> MatchedRoad:
    """A straight segment 100 m long digitised northwards through the local origin."""
    lon, lat = LOCAL.to_wgs84(np.zeros(3), np.array([-50.0, 0.0, 50.0]))
    values: dict[str, object] = {
        "segment_id": "s1",
        "direction": "forward",
        "lonlat": list(zip(lon.tolist(), lat.tolist(), strict=True)),
        "oneway": False,
        "lanes": 2,
        "width_m": 6.0,
    }
    return MatchedRoad(**{**values, **kwargs})  # type: ignore[arg-type]


def _east_of_centre(line: LaneLine) -> float:
    """Where a lane line crosses the origin's parallel, metres east of the centreline."""
    x, y = LOCAL.to_local(np.array(line.lon), np.array(line.lat))
    order = np.argsort(y)
    return float(np.interp(0.0, y[order], x[order]))


@pytest.mark.parametrize(
    ("direction", "oneway", "lanes", "expected"),
    [("forward", False, 2, 1.5), ("backward", False, 2, -1.5), ("forward", True, 1, 0.0)],
)
def test_the_lane_driven_lies_right_of_the_centre_on_two_way_roads(
    direction: str, oneway: bool, lanes: int, expected: float
) -> None:
    """Two-way, one lane each way: half a lane right of the centreline in the direction driven
    (east going north, west going south); one-way with one lane: the centreline. The only lane
    is not tagged: every frame is held to it."""
    (line,) = road_lanes(_northward(direction=direction, oneway=oneway, lanes=lanes))
    assert _east_of_centre(line) == pytest.approx(expected, abs=1e-3)
    assert line.from_right is None


@pytest.mark.parametrize(
    ("direction", "oneway", "lanes", "width", "expected"),
    [
        ("forward", True, 3, 9.0, [3.0, 0.0, -3.0]),
        ("backward", True, 2, 7.0, [-1.75, 1.75]),
        ("forward", False, 4, 13.0, [4.875, 1.625]),
        ("backward", False, 4, 13.0, [-4.875, -1.625]),
    ],
)
def test_several_lanes_each_way_are_tagged_from_the_right(
    direction: str, oneway: bool, lanes: int, width: float, expected: list[float]
) -> None:
    """One line per lane of the direction driven, rightmost first, each tagged with its place,
    the direction's lane count and the lane width; a two-way road's lanes fill its right half."""
    found = road_lanes(_northward(direction=direction, oneway=oneway, lanes=lanes, width_m=width))
    assert [_east_of_centre(line) for line in found] == pytest.approx(expected, abs=1e-3)
    assert [line.from_right for line in found] == list(range(len(expected)))
    assert {(line.lanes, line.lane_width_m) for line in found} == {(len(expected), width / lanes)}


@pytest.mark.parametrize(("oneway", "lanes"), [(False, 3), (False, 1)])
def test_no_lane_line_where_the_direction_s_lanes_are_not_known(oneway: bool, lanes: int) -> None:
    """An odd number of lanes on a two-way road (which are whose?), or one lane shared by both
    directions: no lane line."""
    assert road_lanes(_northward(oneway=oneway, lanes=lanes)) == []
    assert lane_lines([_northward(oneway=oneway, lanes=lanes), _northward()]) == road_lanes(
        _northward()
    )
