"""Relative motion between dashcam frames from their overlapping bird's-eye views.

Each frame's road surface is resampled onto a ground grid fixed to the camera (metres forward
and to the right, 5 cm cells) through one remap table per camera, computed once: the grid does
not depend on the pose, so registration never needs the (wrong) GNSS pose. Two frames a few
metres apart see the same ground; their relative pose is found by warping the later view into the
earlier one's grid by a guess, then phase correlation for the remaining shift, at three trial
rotations with a parabola through the responses. The response (peak energy share, 0..1) is the
confidence: flat asphalt or a view blocked by a truck gives a low one and the pair is not used.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from mapbuilder.camera import CameraLike, ground_homography

FloatImage = NDArray[np.float32]
U8Image = NDArray[np.uint8]
MAX_TURN_WALK = 3
ECC_ITERATIONS = 30
ECC_BLUR_PX = 3
# A weaker response at the guessed turn suggests the turn is off: trial turns are searched.
WALK_BELOW_RESPONSE = 0.4
AGREE_M = 0.25  # phase correlation this far from ECC's answer has lost its peak
TAPER_PX = 16
MIN_OVERLAP = 0.2  # share of the grid both views must see


@dataclass(frozen=True)
class GroundGrid:
    """The camera-fixed ground patch views are compared on: forward near..far, +-half_width."""

    near_m: float = 4.0
    far_m: float = 24.0
    half_width_m: float = 8.0
    cell_m: float = 0.05

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns); row 0 is the far edge, column 0 the left edge."""
        rows = round((self.far_m - self.near_m) / self.cell_m)
        return rows, round(2 * self.half_width_m / self.cell_m)

    def affine(self) -> NDArray[np.float64]:
        """2x3 matrix taking (column, row, 1) to (right, forward) metres of the cell centres."""
        c = self.cell_m
        return np.array(
            [[c, 0.0, -self.half_width_m + c / 2], [0.0, -c, self.far_m - c / 2]], np.float64
        )


@dataclass(frozen=True)
class GroundView:
    """A frame's road surface on the camera-fixed grid (grey) and where it saw anything."""

    grey: FloatImage
    valid: NDArray[np.bool_]


@dataclass(frozen=True)
class RelativeMotion:
    """Frame j's camera in frame i's: position (right, forward metres), heading change
    (degrees clockwise) and the registration's response (0..1)."""

    right_m: float
    forward_m: float
    turn_deg: float
    response: float


class GroundViewer:
    """Resamples frames of one camera onto a ground grid with a precomputed remap table."""

    def __init__(self, calibration: CameraLike, grid: GroundGrid | None = None) -> None:
        self.grid = grid or GroundGrid()
        self._map_x, self._map_y = _remap_table(calibration, self.grid)
        inside = (self._map_x >= 0) & (self._map_x <= calibration.width_px - 1)
        inside &= (self._map_y >= 0) & (self._map_y <= calibration.height_px - 1)
        self._inside = inside
        # What a view depends on besides the frame: its remap table (camera and grid together).
        tables = hashlib.sha256(self._map_x.tobytes())
        tables.update(self._map_y.tobytes())
        self.fingerprint = tables.hexdigest()

    def view(self, frame: U8Image) -> GroundView:
        """The frame's ground on the grid; `frame` is RGB (or grey) uint8."""
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        ground = cv2.remap(grey, self._map_x, self._map_y, interpolation=cv2.INTER_LINEAR)
        return GroundView(np.asarray(ground, np.float32), self._inside)


def _remap_table(calibration: CameraLike, grid: GroundGrid) -> tuple[FloatImage, FloatImage]:
    """Image position of every grid cell (lens distortion applied when the camera has one)."""
    rows, cols = grid.shape
    affine = grid.affine()
    col, row = np.meshgrid(np.arange(cols, dtype=np.float64), np.arange(rows, dtype=np.float64))
    right = affine[0, 0] * col + affine[0, 2]
    forward = affine[1, 1] * row + affine[1, 2]
    # Heading 0 at the origin: east is right and north is forward.
    h = ground_homography(calibration, 0.0, 0.0, 0.0)
    w = h[2, 0] * right + h[2, 1] * forward + h[2, 2]
    u = (h[0, 0] * right + h[0, 1] * forward + h[0, 2]) / w
    v = (h[1, 0] * right + h[1, 1] * forward + h[1, 2]) / w
    if any(calibration.distortion):
        u, v = _distort(calibration, u, v)
    return u.astype(np.float32), v.astype(np.float32)


def _distort(
    calibration: CameraLike, u: NDArray[np.float64], v: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Ideal pixel positions through the lens model, by OpenCV's own projectPoints."""
    matrix = calibration.camera_matrix
    x = (u - matrix[0, 2]) / matrix[0, 0]
    y = (v - matrix[1, 2]) / matrix[1, 1]
    points = np.stack([x.ravel(), y.ravel(), np.ones(x.size)], axis=1)
    zero = np.zeros(3)
    image, _ = cv2.projectPoints(points, zero, zero, matrix, np.array(calibration.distortion))
    image = np.asarray(image, np.float64).reshape(-1, 2)
    return image[:, 0].reshape(u.shape), image[:, 1].reshape(u.shape)


def _motion_to_grid(
    grid: GroundGrid, right_m: float, forward_m: float, turn_deg: float
) -> NDArray[np.float64]:
    """2x3 matrix taking frame i's grid cells to frame j's, for j at (right, forward) in i's
    camera frame turned by `turn_deg` clockwise: the map `warpAffine` needs to bring j onto i."""
    to_metres = np.vstack([grid.affine(), [0.0, 0.0, 1.0]])
    t = math.radians(turn_deg)
    # A point's (right, forward) seen from j: shift to j's origin, then turn back by the turn.
    rotate = np.array(
        [[math.cos(t), -math.sin(t), 0.0], [math.sin(t), math.cos(t), 0.0], [0.0, 0.0, 1.0]]
    )
    shift = np.array([[1.0, 0.0, -right_m], [0.0, 1.0, -forward_m], [0.0, 0.0, 1.0]])
    return np.asarray((np.linalg.inv(to_metres) @ rotate @ shift @ to_metres)[:2], np.float64)


def _overlap(
    grid: GroundGrid, first: GroundView, second: GroundView, matrix: NDArray[np.float64]
) -> tuple[NDArray[np.bool_], FloatImage]:
    """Where both views see ground with `second` warped by `matrix`, and the correlation window
    over it (a Hann window times the overlap's tapered edge)."""
    rows, cols = grid.shape
    flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    seen = cv2.warpAffine(second.valid.astype(np.uint8), matrix, (cols, rows), flags=flags)
    common = first.valid & (seen > 0)
    return common, cv2.createHanningWindow((cols, rows), cv2.CV_32F) * _taper(common)


def _correlate(
    first: GroundView,
    second: GroundView,
    matrix: NDArray[np.float64],
    overlap: tuple[NDArray[np.bool_], FloatImage],
) -> tuple[float, float, float]:
    """Residual shift (cells, x and y) of `second` warped by `matrix` against `first`, and the
    response, over the `overlap` (from `_overlap`)."""
    common, window = overlap
    if common.mean() < MIN_OVERLAP:
        return 0.0, 0.0, 0.0
    rows, cols = common.shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = np.asarray(cv2.warpAffine(second.grey, matrix, (cols, rows), flags=flags), np.float32)
    a = _normalised(first.grey, common)
    b = _normalised(warped, common)
    (dx, dy), response = cv2.phaseCorrelate(a, b, window)
    return float(dx), float(dy), float(response)


def _taper(mask: NDArray[np.bool_]) -> FloatImage:
    """The mask eroded and blurred to a smooth edge: a hard edge shared by both views would
    correlate with itself and pull every shift towards the guess."""
    inner = cv2.erode(mask.astype(np.uint8), np.ones((TAPER_PX, TAPER_PX), np.uint8))
    return np.asarray(cv2.GaussianBlur(inner.astype(np.float32), (0, 0), TAPER_PX / 2), np.float32)


def _normalised(grey: FloatImage, mask: NDArray[np.bool_]) -> FloatImage:
    """Zero mean and unit spread over `mask`, zero outside: brightness changes between frames
    (auto exposure) and the mask's edge must not look like structure."""
    values = grey[mask]
    spread = float(values.std()) or 1.0
    return np.where(mask, (grey - float(values.mean())) / spread, 0.0).astype(np.float32)


def register_pair(
    grid: GroundGrid,
    first: GroundView,
    second: GroundView,
    guess: RelativeMotion,
    *,
    turn_step_deg: float = 0.75,
    near: bool = False,
) -> RelativeMotion:
    """Frame `second`'s pose in `first`'s camera frame, refined from `guess` (for example the
    GNSS step). Phase correlation at the guessed turn (and, where its response is weak, at
    trial turns around it) gives the shift; ECC's direct alignment of the intensities then
    settles the turn, because the correlation's response is flat near its top (a small turn and
    a sideways shift look alike over a short patch); the shift is measured once more at that
    turn, because ECC's shift along the road leans with the views' blur, which grows with
    distance, and phase correlation's does not. For views taken from `near`ly the same place
    (two drives over one road) the correlation can lose its peak: where it wanders off ECC's
    answer, ECC's answer stands with its correlation coefficient as the response."""
    coarse = _shift(grid, first, second, guess)
    if coarse.response < WALK_BELOW_RESPONSE:
        coarse = _shift(grid, first, second, _walk_turns(grid, first, second, guess, turn_step_deg))
    aligned = _align(grid, first, second, coarse)
    if aligned is None:
        return coarse
    final = _shift(grid, first, second, aligned)
    moved = math.hypot(final.right_m - aligned.right_m, final.forward_m - aligned.forward_m)
    return aligned if near and moved > AGREE_M else final


def _walk_turns(
    grid: GroundGrid, first: GroundView, second: GroundView, guess: RelativeMotion, step: float
) -> RelativeMotion:
    """`guess` with the turn whose correlation responds best: trial turns `step` apart, walking
    towards a better neighbour, then a parabola through the best three."""
    # The overlap hardly changes over trial turns of a few degrees: found once, at the guess.
    overlap = _overlap(
        grid, first, second, _motion_to_grid(grid, guess.right_m, guess.forward_m, guess.turn_deg)
    )

    def response(k: int) -> float:
        turn = guess.turn_deg + k * step
        matrix = _motion_to_grid(grid, guess.right_m, guess.forward_m, turn)
        return _correlate(first, second, matrix, overlap)[2]

    trials = {k: response(k) for k in (-1, 0, 1)}
    centre = 0
    for _ in range(MAX_TURN_WALK):
        best = max(trials, key=lambda k: trials[k])
        if best == centre:
            break
        centre = best
        for k in (centre - 1, centre + 1):
            if k not in trials:
                trials[k] = response(k)
    peak = _parabola_peak(trials[centre - 1], trials[centre], trials[centre + 1])
    turn = guess.turn_deg + (centre + peak) * step
    return RelativeMotion(guess.right_m, guess.forward_m, turn, trials[centre])


def _shift(
    grid: GroundGrid, first: GroundView, second: GroundView, start: RelativeMotion
) -> RelativeMotion:
    """`start` with its position corrected by phase correlation at its turn."""
    matrix = _motion_to_grid(grid, start.right_m, start.forward_m, start.turn_deg)
    dx, dy, response = _correlate(first, second, matrix, _overlap(grid, first, second, matrix))
    # The warped view lies (dx, dy) cells from where it should: j sits that much further on.
    return RelativeMotion(
        start.right_m - dx * grid.cell_m,
        start.forward_m + dy * grid.cell_m,
        start.turn_deg,
        response,
    )


def _align(
    grid: GroundGrid,
    first: GroundView,
    second: GroundView,
    start: RelativeMotion,
) -> RelativeMotion | None:
    """`start` refined by OpenCV's ECC (enhanced correlation coefficient) for a rigid motion at
    half resolution, with the correlation coefficient as its response; None where it does not
    converge."""
    rows, cols = grid.shape
    matrix = _motion_to_grid(grid, start.right_m, start.forward_m, start.turn_deg)
    # Where both see ground at `start` exactly: an edge of no data inside it would pull.
    common, _ = _overlap(grid, first, second, matrix)
    if common.mean() < MIN_OVERLAP:
        return None
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = np.asarray(cv2.warpAffine(second.grey, matrix, (cols, rows), flags=flags), np.float32)
    inner = cv2.erode(common.astype(np.uint8), np.ones((TAPER_PX, TAPER_PX), np.uint8))
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, 1e-5)
    try:
        correlation, warp = cv2.findTransformECC(
            _half(_normalised(first.grey, common)),
            _half(_normalised(warped, common)),
            np.eye(2, 3, dtype=np.float32),
            cv2.MOTION_EUCLIDEAN,
            criteria,
            (_half(inner.astype(np.float32)) > 0.99).astype(np.uint8),
            ECC_BLUR_PX,
        )
    except cv2.error:
        return None
    # Half-resolution pixel centres lie at full / 2 - 0.25: bring the warp back to full cells.
    halve = np.array([[0.5, 0.0, -0.25], [0.0, 0.5, -0.25], [0.0, 0.0, 1.0]])
    full = np.linalg.inv(halve) @ np.vstack([warp.astype(np.float64), [0, 0, 1]]) @ halve
    return _motion_of(grid, np.vstack([matrix, [0, 0, 1]]) @ full, float(correlation))


def _half(image: FloatImage) -> FloatImage:
    """Half the width and height, each pixel the mean of four."""
    rows, cols = image.shape
    size = (cols // 2, rows // 2)
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.float32)


def _motion_of(grid: GroundGrid, cells: NDArray[np.float64], response: float) -> RelativeMotion:
    """The relative motion whose `_motion_to_grid` is the 3x3 `cells` (its inverse)."""
    to_metres = np.vstack([grid.affine(), [0.0, 0.0, 1.0]])
    metres = to_metres @ cells @ np.linalg.inv(to_metres)  # rotate @ shift, in metres
    turn = math.atan2(metres[1, 0], metres[0, 0])
    rotation = metres[:2, :2]
    right, forward = -(rotation.T @ metres[:2, 2])
    return RelativeMotion(float(right), float(forward), math.degrees(turn), response)


def _parabola_peak(left: float, centre: float, right: float) -> float:
    """Offset (in steps, within +-1) of the top of the parabola through three equally spaced values."""
    curvature = left - 2 * centre + right
    if curvature >= 0:  # no peak between: take the best of the three
        return float(np.argmax([left, centre, right]) - 1)
    return float(np.clip(0.5 * (left - right) / curvature, -1.0, 1.0))
