"""The solid lines painted beside the car, which tell the lane it drove in.

On a road with several lanes each way the map matcher cannot say which lane the car was in, but
the frame can: the solid edge line on the right (or the solid line on the left: the road's other
edge, or a two-way road's centre line) lies half a lane, one and a half lanes, ... away
(`constraints.lane_agreement` turns the distances into a lane). Dashed lines between lanes are
not counted: a dash can fall outside the view, and a missed one would shift the answer by a
whole lane, where a missed solid line only leaves it unknown.

The lines are found on the frame's camera-fixed ground view (`register.GroundView`): paint is
what is brighter than the asphalt on either side (a horizontal top-hat), sheared by a few trial
angles so the car's small yaw to the lane does not smear it; a column that is painted on nearly
every row of the near band, with no gap longer than a few decimetres, is a solid line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from mapbuilder.tiles.register import GroundGrid, GroundView

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class MarkingSettings:
    """Where and how lines are looked for."""

    near_m: float = 4.0
    far_m: float = 14.0  # beyond, a curve bends the line sideways by decimetres
    max_line_width_m: float = 0.5  # wider bright things (a crosswalk bar, a car) are not lines
    min_contrast: float = 18.0  # grey levels brighter than the asphalt beside it
    noise_factor: float = 4.0  # ... and this many times the view's typical top-hat response
    max_yaw_deg: float = 6.0  # the car's heading to the lane, searched in steps of yaw_step_deg
    yaw_step_deg: float = 1.5
    min_solid_share: float = 0.85  # of the band's rows the line is painted on
    max_solid_gap_m: float = 0.6  # a dashed line's gap is metres
    # Of the band the view must see the line's column on (the far side of a wide road is seen
    # only further ahead). What it does not see may hide a gap, so a long dash can pass for a
    # solid line; that only ever brings a line nearer, and `lane_agreement` then finds the two
    # sides disagreeing with the lane count.
    min_seen_m: float = 6.0
    min_apart_m: float = 0.9  # a solid line nearer the camera than this runs under the car


@dataclass(frozen=True)
class SolidLines:
    """The nearest solid line on each side of the camera, metres (NaN where none was seen)."""

    right_m: float
    left_m: float


NONE_SEEN = SolidLines(math.nan, math.nan)


def solid_lines(view: GroundView, grid: GroundGrid, settings: MarkingSettings) -> SolidLines:
    """The nearest solid line right and left of the camera in `view`."""
    painted, seen = _painted(view, grid, settings)
    if not seen.any():
        return NONE_SEEN
    yaws = np.radians(
        np.arange(-settings.max_yaw_deg, settings.max_yaw_deg + 1e-9, settings.yaw_step_deg)
    )
    rows, cols = np.nonzero(painted)
    scores = [_gathered(rows, cols, _shifts(painted.shape[0], grid, settings, y)) for y in yaws]
    along, along_seen = _sheared(painted, seen, grid, settings, float(yaws[np.argmax(scores)]))
    offsets = _solid_columns(along, along_seen, grid, settings)
    if np.any(np.abs(offsets) < settings.min_apart_m):
        return NONE_SEEN  # a solid line under the car: it is crossing it, or not on a lane
    right = offsets[offsets > 0]
    left = -offsets[offsets < 0]
    return SolidLines(
        float(right.min()) if right.size else math.nan,
        float(left.min()) if left.size else math.nan,
    )


def _band_rows(grid: GroundGrid, settings: MarkingSettings) -> slice:
    """Rows of the grid between `near_m` and `far_m` ahead, as far as the grid reaches (row 0
    is its far edge); empty where they do not meet."""
    first = round((grid.far_m - _band_far_m(grid, settings)) / grid.cell_m)
    last = round((grid.far_m - max(settings.near_m, grid.near_m)) / grid.cell_m)
    return slice(first, max(first, last))


def _band_far_m(grid: GroundGrid, settings: MarkingSettings) -> float:
    """Where the band's first row is: `far_m`, or the grid's far edge if nearer."""
    return min(settings.far_m, grid.far_m)


def _painted(
    view: GroundView, grid: GroundGrid, settings: MarkingSettings
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Paint (narrow and brighter than its surroundings) and the cells seen, in the near band."""
    rows = _band_rows(grid, settings)
    grey = view.grey[rows]
    if grey.size == 0:
        nothing = np.zeros(grey.shape, bool)
        return nothing, nothing
    width = max(3, round(settings.max_line_width_m / grid.cell_m) | 1)
    kernel = np.ones((1, width), np.uint8)
    seen = cv2.erode(view.valid[rows].astype(np.uint8), kernel).astype(bool)
    tophat = cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, kernel)
    response = tophat[seen]
    if response.size == 0:
        return np.zeros_like(seen), seen
    typical = float(np.median(response))
    threshold = max(settings.min_contrast, settings.noise_factor * typical)
    return (tophat > threshold) & seen, seen


def _sheared(
    painted: NDArray[np.bool_],
    seen: NDArray[np.bool_],
    grid: GroundGrid,
    settings: MarkingSettings,
    yaw_rad: float,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """The band shifted row by row so a line at `yaw_rad` to the car (clockwise) is a column,
    placed where it crosses the camera's row (0 m ahead); `_margin` columns are added each side
    for lines that cross it beyond the view's edge."""
    rows, cols = painted.shape
    shifts = _shifts(rows, grid, settings, yaw_rad)
    margin = _margin(grid, settings)
    source = np.arange(-margin, cols + margin)[None, :] + shifts[:, None]
    inside = (source >= 0) & (source < cols)
    source = np.clip(source, 0, cols - 1)
    row_index = np.arange(rows)[:, None]
    return (
        painted[row_index, source] & inside,
        seen[row_index, source] & inside,
    )


def _shifts(rows: int, grid: GroundGrid, settings: MarkingSettings, yaw_rad: float) -> IntArray:
    """Per row of the band, the columns a line at `yaw_rad` lies right of where it crosses the
    camera's row."""
    forward = _band_far_m(grid, settings) - grid.cell_m * (np.arange(rows) + 0.5)
    return np.round(forward * math.tan(yaw_rad) / grid.cell_m).astype(np.int64)


def _gathered(rows: IntArray, cols: IntArray, shifts: IntArray) -> float:
    """How few columns the painted cells (`rows`, `cols`) fall in once each row is moved back
    by its shift: the sum of squared counts. Counts, not shares: a column the view sees on a
    few rows only would otherwise weigh as much as one it sees whole."""
    if rows.size == 0:
        return 0.0
    moved = cols - shifts[rows]
    return float(np.square(np.bincount(moved - moved.min()).astype(np.float64)).sum())


def _margin(grid: GroundGrid, settings: MarkingSettings) -> int:
    """Columns a line at the largest yaw searched moves sideways over the band."""
    reach = _band_far_m(grid, settings) * math.tan(math.radians(settings.max_yaw_deg))
    return math.ceil(reach / grid.cell_m)


def _solid_columns(
    along: NDArray[np.bool_],
    along_seen: NDArray[np.bool_],
    grid: GroundGrid,
    settings: MarkingSettings,
) -> FloatArray:
    """Offsets (right positive, metres) of the columns holding a solid line."""
    # A line two or three cells wide, or one that wanders a cell, still fills its column.
    near = cv2.dilate(along.astype(np.uint8), np.ones((1, 5), np.uint8)).astype(bool)
    seen_rows = along_seen.sum(axis=0)
    share = near.sum(axis=0) / np.maximum(seen_rows, 1)
    enough = seen_rows * grid.cell_m >= settings.min_seen_m
    candidates = np.flatnonzero(enough & (share >= settings.min_solid_share))
    offsets = []
    for run in np.split(candidates, np.flatnonzero(np.diff(candidates) > 1) + 1):
        if run.size == 0:
            continue
        column = int(run[np.argmax(share[run])])
        if _longest_gap_m(near[:, column], along_seen[:, column], grid) <= settings.max_solid_gap_m:
            # The paint's own centre: the widened columns are all full across the run.
            paint = along[:, run].sum(axis=0).astype(np.float64)
            centre = float(np.average(run, weights=paint)) if paint.sum() else float(column)
            column_m = (centre - _margin(grid, settings) + 0.5) * grid.cell_m
            offsets.append(column_m - grid.half_width_m)
    return np.array(offsets, np.float64)


def _longest_gap_m(painted: NDArray[np.bool_], seen: NDArray[np.bool_], grid: GroundGrid) -> float:
    """The longest run of seen, unpainted cells along a column, metres."""
    gap = seen & ~painted
    longest = run = 0
    for cell in gap:
        run = run + 1 if cell else 0
        longest = max(longest, run)
    return longest * grid.cell_m
