"""Bird's-eye view: a dashcam frame's road surface projected into Web Mercator tiles.

The ground is a plane, so image pixels and ground points are related by one homography per pose
(`mapbuilder.camera`); within the few tens of metres a frame sees, Mercator pixels are an affine
image of east-north metres around the camera (the scale varies by under 1e-5 over 25 m). Each
output tile pixel therefore maps to an image position through one 3x3 matrix: the remap table is
three broadcast array expressions, and the sampling is OpenCV's `remap`, never per-pixel Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from mapbuilder.camera import CameraLike, Matrix, ground_homography
from mapbuilder.tiles.mercator import TILE_PX, Tile, px_per_metre, tiles_covering, world_px

FloatImage = NDArray[np.float32]
# Ground points and pixel positions: float32 per tile pixel, float64 where few are needed.
Points = NDArray[np.floating[Any]]
U8Image = NDArray[np.uint8]
# How finely the ground is searched for the topmost image row it reaches (the far limit itself
# is always searched, and that is where the topmost row lies), and the rows kept above it.
_ROW_SEARCH_STEP_M = 0.25
_ROW_MARGIN_PX = 3


@dataclass(frozen=True)
class FramePose:
    """Where a frame was taken: WGS84 position, heading clockwise from true north, POSIX time."""

    lon: float
    lat: float
    heading_deg: float
    time_s: float


@dataclass(frozen=True)
class BevSettings:
    """What part of the road a frame contributes, and how its edges are feathered."""

    zoom: int = 21
    near_m: float = 3.0
    far_m: float = 25.0
    # Lateral reach either side of the camera: beyond it the road is seen too obliquely.
    half_width_m: float = 12.0
    # Weights fall to zero over this margin at the image border and at the near and far limits.
    feather_px: float = 24.0
    feather_m: float = 2.0


@dataclass(frozen=True)
class TileSample:
    """One frame's view of a window of one tile: colours, and a weight per pixel (0 where it sees
    nothing). The window is rows [row0, row0 + h) and columns [col0, col0 + w) of the tile."""

    tile: Tile
    image: U8Image
    weight: FloatImage
    time_s: float
    row0: int = 0
    col0: int = 0

    @property
    def window(self) -> tuple[slice, slice]:
        """Where `image` and `weight` lie in the tile."""
        height, width = self.weight.shape
        return slice(self.row0, self.row0 + height), slice(self.col0, self.col0 + width)


class FrameProjector:
    """Projects frames of one camera into tiles at one zoom."""

    def __init__(self, calibration: CameraLike, settings: BevSettings | None = None) -> None:
        self.calibration = calibration
        self.settings = settings or BevSettings()

    def footprint_px(self, pose: FramePose) -> tuple[float, float, float, float]:
        """Global-pixel box (x0, y0, x1, y1) around the ground the frame contributes."""
        s = self.settings
        cx, cy = world_px(pose.lon, pose.lat, s.zoom)
        scale = px_per_metre(pose.lat, s.zoom)
        h = math.radians(pose.heading_deg)
        corners = [
            (f * math.sin(h) + lat * math.cos(h), f * math.cos(h) - lat * math.sin(h))
            for f in (s.near_m, s.far_m)
            for lat in (-s.half_width_m, s.half_width_m)
        ]
        xs = [cx + east * scale for east, _ in corners]
        ys = [cy - north * scale for _, north in corners]
        return min(xs), min(ys), max(xs), max(ys)

    @cached_property
    def first_ground_row(self) -> int:
        """The topmost image row a sample can read: rows above it (sky, and ground beyond
        `far_m`) never carry weight, so a frame can be decoded and kept from this row down.

        The ground within reach is sampled every `_ROW_SEARCH_STEP_M` and projected as `sample`
        projects it (distortion included); the margin covers what lies between samples and the
        bilinear neighbour above."""
        s, c = self.settings, self.calibration
        forward = np.arange(s.near_m, s.far_m + _ROW_SEARCH_STEP_M, _ROW_SEARCH_STEP_M)
        lateral = np.arange(
            -s.half_width_m, s.half_width_m + _ROW_SEARCH_STEP_M, _ROW_SEARCH_STEP_M
        )
        ahead, side = np.meshgrid(np.minimum(forward, s.far_m), lateral)
        # Facing north from the origin: east is the lateral offset, north is ahead.
        u, v = self._image_coords(FramePose(0.0, 0.0, 0.0, 0.0), side, ahead)
        inside = (u > -1.0) & (u < c.width_px) & (v > -1.0) & (v < c.height_px)
        if not np.any(inside):
            return 0
        return max(0, math.floor(float(v[inside].min())) - _ROW_MARGIN_PX)

    def ground_rows(self, frame: U8Image) -> U8Image:
        """The rows of `frame` (a whole image of this camera) that samples can read, from
        `first_ground_row` down, as a copy: what is worth keeping of a decoded frame.

        A copy, not a view (a slice of whole rows is already contiguous): a view would keep the
        whole decoded frame alive behind the cache's count of half of it."""
        return frame[self.first_ground_row :].copy()

    def tiles(self, pose: FramePose) -> list[Tile]:
        """Tiles the frame's ground footprint (near..far ahead, half_width either side) touches."""
        return tiles_covering(*self.footprint_px(pose), self.settings.zoom)

    def sample(self, frame: U8Image, pose: FramePose, tile: Tile) -> TileSample | None:
        """The frame's pixels on `tile` with their weights; None when it contributes nothing.
        `frame` is the camera's whole image or its bottom rows (as `ground_rows` keeps them):
        rows are placed by counting from the bottom.

        Only the part of the tile inside the footprint's box is computed: most tiles a frame
        touches it touches at an edge."""
        rows, cols = self._window(pose, tile)
        if rows.size == 0 or cols.size == 0:
            return None
        east, north = self._ground_grid(pose, tile, rows, cols)
        h = math.radians(pose.heading_deg)
        forward = east * math.sin(h) + north * math.cos(h)
        lateral = east * math.cos(h) - north * math.sin(h)
        u, v = self._image_coords(pose, east, north)
        weight = self._weight(forward, lateral, u, v)
        if not np.any(weight > 0):
            return None
        rows_above = self.calibration.height_px - frame.shape[0]
        # Shifted in float32 by a whole number of rows: exact, so the bilinear weights, and the
        # tile's bytes, are those of the whole image.
        image = cv2.remap(
            frame,
            u.astype(np.float32),
            v.astype(np.float32) - np.float32(rows_above),
            interpolation=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        return TileSample(
            tile, np.asarray(image, np.uint8), weight, pose.time_s, int(rows[0]), int(cols[0])
        )

    def _window(self, pose: FramePose, tile: Tile) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Rows and columns of `tile` inside the footprint's box (one pixel of margin)."""
        _, tx, ty = tile
        x0, y0, x1, y1 = self.footprint_px(pose)
        c0 = max(0, math.floor(x0 - tx * TILE_PX) - 1)
        c1 = min(TILE_PX, math.ceil(x1 - tx * TILE_PX) + 1)
        r0 = max(0, math.floor(y0 - ty * TILE_PX) - 1)
        r1 = min(TILE_PX, math.ceil(y1 - ty * TILE_PX) + 1)
        return np.arange(r0, max(r0, r1)), np.arange(c0, max(c0, c1))

    def _ground_grid(
        self, pose: FramePose, tile: Tile, rows: NDArray[np.int64], cols: NDArray[np.int64]
    ) -> tuple[FloatImage, FloatImage]:
        """East and north metres from the camera of the pixel centres of a window of `tile`, in
        float32: the per-pixel work that follows is memory-bound, and float32 still places a
        point 25 m away to a micrometre. The offsets are taken in float64 first, since world
        pixels (~1e8 at z21) are beyond float32's exact integers."""
        z, tx, ty = tile
        cx, cy = world_px(pose.lon, pose.lat, z)
        scale = px_per_metre(pose.lat, z)
        east = ((tx * TILE_PX + 0.5 - cx) + cols) / scale
        north = -((ty * TILE_PX + 0.5 - cy) + rows) / scale
        shape = (rows.size, cols.size)
        return (
            np.broadcast_to(east.astype(np.float32)[np.newaxis, :], shape),
            np.broadcast_to(north.astype(np.float32)[:, np.newaxis], shape),
        )

    def _image_coords(self, pose: FramePose, east: Points, north: Points) -> tuple[Points, Points]:
        """Image pixel of each ground point (lens distortion applied when the camera has one)."""
        homography: Matrix = ground_homography(self.calibration, 0.0, 0.0, pose.heading_deg)
        # Plain floats: a numpy float64 coefficient would turn float32 points into float64.
        (h00, h01, h02), (h10, h11, h12), (h20, h21, h22) = homography.tolist()
        denominator = h20 * east + h21 * north + h22
        u = (h00 * east + h01 * north + h02) / denominator
        v = (h10 * east + h11 * north + h12) / denominator
        if any(self.calibration.distortion):
            u, v = _distort(self.calibration, u, v)
        return u, v

    def _weight(
        self,
        forward: Points,
        lateral: Points,
        u: Points,
        v: Points,
    ) -> FloatImage:
        """Nearness (resolution falls with distance squared) times feathering at every limit."""
        s, c = self.settings, self.calibration
        border = np.minimum(
            np.minimum(u + 0.5, c.width_px - 0.5 - u), np.minimum(v + 0.5, c.height_px - 0.5 - v)
        )
        # The ramps multiplied one after another, in place (the order fixes the bits).
        weight = np.clip(border / s.feather_px, 0.0, 1.0)
        weight *= np.clip((forward - s.near_m) / s.feather_m, 0.0, 1.0)
        weight *= np.clip((s.far_m - forward) / s.feather_m, 0.0, 1.0)
        weight *= np.clip((s.half_width_m - np.abs(lateral)) / s.feather_m, 0.0, 1.0)
        weight *= 1.0 / np.maximum(forward, s.near_m) ** 2
        return np.asarray(weight, np.float32)


def _distort(calibration: CameraLike, u: Points, v: Points) -> tuple[Points, Points]:
    """OpenCV's radial-tangential model (k1, k2, p1, p2, k3) applied to ideal pixel positions."""
    k1, k2, p1, p2, k3 = (float(k) for k in calibration.distortion)
    matrix = calibration.camera_matrix
    fx, fy, cx, cy = (float(m) for m in (matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2]))
    x, y = (u - cx) / fx, (v - cy) / fy
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd * fx + cx, yd * fy + cy
