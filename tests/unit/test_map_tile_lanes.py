"""Lane lines from matched road segments: which lanes, on which side, tagged when there are several
in the direction driven, and none where the direction's lanes are unknown."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mapbuilder.geo import LocalFrame
from mapbuilder.tiles.constraints import LaneLine
from mapbuilder.tiles.lanes import MatchedRoad, lane_lines, road_lanes

LON, LAT = 24.9384, 60.1699
LOCAL = LocalFrame(LON, LAT)


def _northward(**kwargs: object) -> MatchedRoad:
    """A straight two-way segment 100 m long digitised northwards through the local origin."""
    points = [(0.0, -50.0), (0.0, 0.0), (0.0, 50.0)]
    return _road(points, "s1", **{"oneway": False, "lanes": 2, "width_m": 6.0, **kwargs})


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


def _road(points: list[tuple[float, float]], segment_id: str, **kwargs: object) -> MatchedRoad:
    """A segment through local points (east, north metres), driven forward."""
    x, y = (np.array(values, np.float64) for values in zip(*points, strict=True))
    lon, lat = LOCAL.to_wgs84(x, y)
    values: dict[str, object] = {
        "segment_id": segment_id,
        "direction": "forward",
        "lonlat": list(zip(lon.tolist(), lat.tolist(), strict=True)),
        "oneway": True,
        "lanes": 1,
        "width_m": 3.5,
    }
    return MatchedRoad(**{**values, **kwargs})  # type: ignore[arg-type]


def _local(line: LaneLine) -> np.ndarray:
    x, y = LOCAL.to_local(np.array(line.lon), np.array(line.lat))
    return np.stack([x, y], axis=1)


def test_a_lane_running_straight_on_into_the_next_segment_is_one_line() -> None:
    """A way split at a side street: one lane line from end to end, so the margin left out at
    a line's ends is only where the car turns; the same road matched twice counts once."""
    first = _road([(0.0, 0.0), (0.0, 30.0)], "a")
    second = _road([(0.0, 30.0), (1.0, 60.0)], "b")  # 2 degrees on
    (line,) = lane_lines([first, second, first])
    assert _local(line)[[0, -1]] == pytest.approx(np.array([[0.0, 0.0], [1.0, 60.0]]), abs=1e-3)


def test_roads_matched_apart_are_not_joined_even_where_they_line_up() -> None:
    """Up the first road, right into a side street, and later back onto the road's
    continuation: where the first road ends the car turned, and that end keeps its margin."""
    first = _road([(0.0, 0.0), (0.0, 30.0)], "a")
    side = _road([(0.0, 30.0), (30.0, 30.0)], "c")
    on = _road([(0.0, 30.0), (0.0, 60.0)], "b")
    assert len(lane_lines([first, side, on])) == 3
    assert len(lane_lines([first, on, side])) == 2


def test_a_road_without_a_shape_gives_no_line_and_stops_nothing() -> None:
    """A matched segment whose shape is missing or a single point (a damaged row) is passed
    over, also when it comes first."""
    broken = _road([(0.0, 0.0), (0.0, 30.0)], "x", lonlat=[])
    point = _road([(0.0, 0.0), (0.0, 30.0)], "y", lonlat=[(LON, LAT)])
    assert lane_lines([broken]) == []
    assert lane_lines([broken, point, _northward()]) == road_lanes(_northward())


@pytest.mark.parametrize(
    "second",
    [
        _road([(0.0, 30.0), (30.0, 30.0)], "b"),  # a turn
        _road([(0.0, 30.0), (0.0, 60.0)], "b", lanes=2, width_m=7.0),  # another lane count
        _road([(0.0, 32.0), (0.0, 60.0)], "b"),  # not where the first ends
    ],
)
def test_lanes_that_turn_change_or_do_not_meet_stay_apart(second: MatchedRoad) -> None:
    first = _road([(0.0, 0.0), (0.0, 30.0)], "a")
    assert len(lane_lines([first, second])) == len(road_lanes(first)) + len(road_lanes(second))


def test_a_loop_of_segments_running_straight_on_keeps_every_segment() -> None:
    """A roundabout split into 36 ways, each 10 degrees on from the last: one line, nothing
    lost."""
    corners = [
        (20.0 * math.sin(math.radians(a)), 20.0 * math.cos(math.radians(a)))
        for a in range(0, 370, 10)
    ]
    roads = [_road([corners[k], corners[k + 1]], f"r{k}") for k in range(36)]
    (line,) = lane_lines(roads)
    assert len(line.lon) == 37
