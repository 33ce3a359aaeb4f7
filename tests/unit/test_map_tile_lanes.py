"""Lane lines from matched road segments: which lane, on which side, and when none is known."""

from __future__ import annotations

import numpy as np
import pytest

from mapbuilder.geo import LocalFrame
from mapbuilder.tiles.lanes import MatchedRoad, lane_line, lane_lines

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


def _east_of_centre(road: MatchedRoad) -> float:
    """Where the road's lane line crosses the origin's parallel, metres east of the centreline."""
    line = lane_line(road)
    assert line is not None
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
    (east going north, west going south); one-way with one lane: the centreline."""
    road = _northward(direction=direction, oneway=oneway, lanes=lanes)
    assert _east_of_centre(road) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize(("oneway", "lanes"), [(False, 4), (True, 2), (False, 1)])
def test_no_lane_line_where_the_lane_is_not_known(oneway: bool, lanes: int) -> None:
    """Several lanes in the direction driven, or one lane shared by both: no lane line."""
    assert lane_line(_northward(oneway=oneway, lanes=lanes)) is None
    assert lane_lines([_northward(oneway=oneway, lanes=lanes), _northward()]) == [
        lane_line(_northward())
    ]
