"""Solid lines painted beside the car, and which lane they put it in."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from mapbuilder.tiles.constraints import LaneLine, SolidLineSight, lane_agreement
from mapbuilder.tiles.markings import MarkingSettings, solid_lines
from mapbuilder.tiles.register import GroundGrid, GroundView

GRID = GroundGrid()
SETTINGS = MarkingSettings()


@dataclass(frozen=True)
class Paint:
    """A line on the ground: its offset where it passes the camera (right positive), its angle
    to the car (clockwise), width, and dashes (metres painted, metres gap) or solid."""

    right_m: float
    yaw_deg: float = 0.0
    width_m: float = 0.15
    dashes: tuple[float, float] | None = None


def _view(*lines: Paint, seed: int = 0, valid: bool = True) -> GroundView:
    """Asphalt with noise and some blotches, the lines painted on, slightly blurred."""
    rng = np.random.default_rng(seed)
    rows, cols = GRID.shape
    affine = GRID.affine()
    col, row = np.meshgrid(np.arange(cols), np.arange(rows))
    right = affine[0, 0] * col + affine[0, 2]
    forward = affine[1, 1] * row + affine[1, 2]
    grey = rng.normal(90.0, 6.0, (rows, cols))
    grey += cv2.GaussianBlur(rng.normal(0.0, 40.0, (rows, cols)), (0, 0), 12)
    for line in lines:
        across = right - line.right_m - forward * math.tan(math.radians(line.yaw_deg))
        on = np.abs(across) <= line.width_m / 2
        if line.dashes is not None:
            painted, gap = line.dashes
            on &= np.mod(forward, painted + gap) < painted
        grey[on] = 200.0
    blurred = cv2.GaussianBlur(grey.astype(np.float32), (3, 3), 0)
    return GroundView(np.clip(blurred, 0, 255).astype(np.float32), np.full((rows, cols), valid))


def test_the_nearest_solid_line_each_side_is_found_and_dashed_lines_are_not() -> None:
    """Rightmost lane of a one-way road of three: the edge line 1.4 m right, dashed lane lines
    1.9 m and 5.1 m left, the far edge 8.0 m left (where the view ends, but the car's yaw of 3
    degrees brings it in)."""
    view = _view(
        Paint(1.4, 3.0, 0.24),
        Paint(-1.9, 3.0, dashes=(3.0, 6.0)),
        Paint(-5.1, 3.0, dashes=(3.0, 6.0)),
        Paint(-8.0, 3.0, 0.24),
    )
    seen = solid_lines(view, GRID, SETTINGS)
    assert seen.right_m == pytest.approx(1.4, abs=0.1)
    assert seen.left_m == pytest.approx(8.0, abs=0.1)


def test_lines_are_found_at_their_distance_with_the_car_yawed_either_way() -> None:
    """The offset is where the line passes the camera, not where the view sees it."""
    for yaw in (-5.0, 0.0, 4.5):
        seen = solid_lines(_view(Paint(1.6, yaw), Paint(-4.9, yaw)), GRID, SETTINGS)
        assert seen.right_m == pytest.approx(1.6, abs=0.1), yaw
        assert seen.left_m == pytest.approx(4.9, abs=0.1), yaw


@pytest.mark.parametrize(
    "paint",
    [
        Paint(1.5, dashes=(3.0, 6.0)),  # a lane line
        Paint(1.5, dashes=(9.0, 3.0)),  # a warning line: long dashes, short gaps
        Paint(1.5, width_m=3.0),  # something wide and bright: a truck, a crosswalk bar
    ],
)
def test_what_is_not_a_solid_line_is_not_taken_for_one(paint: Paint) -> None:
    seen = solid_lines(_view(paint), GRID, SETTINGS)
    assert math.isnan(seen.right_m) and math.isnan(seen.left_m)


def test_a_solid_line_under_the_car_tells_nothing() -> None:
    """Crossing a solid line (or driving on one): no side can be told."""
    seen = solid_lines(_view(Paint(0.3), Paint(3.4), Paint(-3.2)), GRID, SETTINGS)
    assert math.isnan(seen.right_m) and math.isnan(seen.left_m)


def test_a_view_that_sees_nothing_tells_nothing() -> None:
    seen = solid_lines(_view(Paint(1.4), valid=False), GRID, SETTINGS)
    assert math.isnan(seen.right_m) and math.isnan(seen.left_m)


def _lane(from_right: int, lanes: int = 3, width: float = 3.25) -> LaneLine:
    return LaneLine((0.0, 0.0), (0.0, 1.0), from_right, lanes, width)


def _sight(right: list[float], left: list[float] | None = None) -> SolidLineSight:
    return SolidLineSight(np.array(right), np.array(left or [math.nan] * len(right)))


def test_the_lane_a_frame_is_held_to_is_the_one_its_solid_lines_put_it_in() -> None:
    """Of three lanes 3.25 m wide: the right edge 1.1 m away and the left one 7.7 m, the
    rightmost lane; both 4.4 m away, the middle one. Each held where a neighbour agrees."""
    sight = _sight([1.1, 1.1, 1.1, 4.4, 4.4, 4.4, 4.4], [7.7, 7.7, 7.7, 4.4, 4.4, 4.4, 4.4])
    assert lane_agreement(_lane(0), sight).tolist() == [1, 0, 0, 0, 0, 0, 0]
    assert lane_agreement(_lane(1), sight).tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert not lane_agreement(_lane(2), sight).any()


def test_one_side_alone_or_one_frame_alone_holds_no_frame() -> None:
    """A side not seen (a solid line between lanes, a long dash or a missed edge could be what
    the other side saw), or a frame whose neighbours saw nothing: no lane is told."""
    nan = math.nan
    one_side = _sight([1.1, 1.1, 1.1, 1.1], [nan, nan, 7.7, nan])
    assert not lane_agreement(_lane(0), one_side).any()
    alone = _sight([nan, nan, 1.1, nan, nan, nan], [nan, nan, 7.7, nan, nan, nan])
    assert not lane_agreement(_lane(0), alone).any()


def test_the_sides_must_agree_with_the_lane_count() -> None:
    """Right edge 1.1 m and left 4.4 m: a road of two lanes, not the map's three."""
    sight = _sight([1.1] * 5, [4.4] * 5)
    assert not any(lane_agreement(_lane(k), sight).any() for k in range(3))
    assert lane_agreement(_lane(0, lanes=2), sight).all()


def test_neighbours_count_only_within_the_same_part_of_the_drive() -> None:
    """A frame across a pause (another part: the car may have driven anywhere) neither
    agrees nor disagrees."""
    sight = _sight([1.1, 1.1, 4.4, 1.1, 1.1], [7.7, 7.7, 4.4, 7.7, 7.7])
    parts = np.array([0, 0, 1, 2, 2])
    assert lane_agreement(_lane(0), sight, parts).tolist() == [1, 1, 0, 1, 1]
    assert lane_agreement(_lane(0), sight).tolist() == [0, 0, 0, 0, 0]


def test_the_only_lane_holds_every_frame() -> None:
    only = LaneLine((0.0, 0.0), (0.0, 1.0))
    assert lane_agreement(only, _sight([math.nan, 1.1, 9.0])).all()


def test_frames_near_a_lane_change_or_disagreeing_sides_are_held_to_no_lane() -> None:
    """A frame whose left side says another lane, one at a lane's edge (changing lanes), and
    their neighbours two frames either way, are left free."""
    nan = math.nan
    right = [1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 3.3, 1.1, 1.1, 1.1, 1.1]
    left = [7.7, 7.7, 7.7, 4.4, 7.7, 7.7, 7.7, 7.7, 7.7, 7.7, 7.7, nan, 7.7, 7.7, 7.7, 7.7]
    held = lane_agreement(_lane(0), _sight(right, left)).tolist()
    assert held == [1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1]
