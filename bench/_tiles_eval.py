"""Ground truth and quality measures for stitched tiles of simulated drives.

The truth tile is the simulator's orthophoto (5 cm/px, local transverse Mercator) resampled at
the tile's pixel centres. Measures, over the pixels a tile covers: PSNR, SSIM (Gaussian window,
the standard constants), the georeferencing offset (phase correlation of the two tiles), and a
ghosting measure: the share of strong edges in the stitched tile with no edge within 2 px in the
truth once the truth is moved by that offset (a doubled lane marking shows up as such edges; a
mosaic that is only offset does not).

The orthophoto is the bare road; the video also shows the simulator's vehicles, which the
ground projection smears across the tiles as if painted on the road. Their edges have no
counterpart in the truth at any pose, so the measure leaves out the pixels near what the stitch
from the true poses shows and the truth lacks (`not_ground`): what is left counts what the
poses doubled. The share with those pixels kept is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from mapbuilder.tiles.mercator import TILE_PX, Tile, lonlat_of_px, px_per_metre
from roadswarm.sim.world import World

U8Image = NDArray[np.uint8]
MARGIN_M = 2.0
EDGE_THRESHOLD = 60.0
EDGE_TOLERANCE_PX = 2
# Pose errors left after refinement move a vehicle's smear by up to about this much.
NOT_GROUND_MARGIN_M = 1.0


def truth_tile(world: World, tile: Tile) -> U8Image:
    """The orthophoto at the tile's pixel centres (RGB)."""
    z, tx, ty = tile
    grid = np.arange(TILE_PX, dtype=np.float64) + 0.5
    cols, rows = np.meshgrid(tx * TILE_PX + grid, ty * TILE_PX + grid)
    lon, lat = lonlat_of_px(cols.ravel(), rows.ravel(), z)
    x, y = world.frame.to_local(lon, lat)
    g = world.grid
    col = (x - g.origin_x_m) / g.resolution_m
    row = (g.origin_y_m - y) / g.resolution_m
    c0, r0 = int(np.floor(col.min())) - 2, int(np.floor(row.min())) - 2
    c1, r1 = int(np.ceil(col.max())) + 2, int(np.ceil(row.max())) + 2
    window = world.ortho.read_pixels(c0, r0, c1 - c0, r1 - r0)
    map_x = (col - c0 - 0.5).reshape(TILE_PX, TILE_PX).astype(np.float32)
    map_y = (row - r0 - 0.5).reshape(TILE_PX, TILE_PX).astype(np.float32)
    bgr = cv2.remap(window, map_x, map_y, interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.uint8)


@dataclass(frozen=True)
class TileQuality:
    """How one stitched tile compares with its truth."""

    covered: float
    psnr_db: float
    ssim: float
    offset_m: float | None
    ghost_edges: float | None
    ghost_edges_with_vehicles: float | None


def psnr(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """Peak signal-to-noise ratio of two sets of 0-255 values, dB."""
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim_map(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """SSIM per pixel of two grey images (Wang et al. 2004: 11 px Gaussian, sigma 1.5)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(image: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(cv2.GaussianBlur(image, (11, 11), 1.5), np.float64)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )


def phase_shift(
    stitched: NDArray[np.float64], truth: NDArray[np.float64], mask: NDArray[np.bool_]
) -> tuple[float, float] | None:
    """Shift (pixels, x and y) of the stitched tile against the true one by phase correlation
    (None: too little imagery or texture to tell)."""
    if mask.mean() < 0.5:
        return None
    fill = float(truth[mask].mean())
    a = np.where(mask, stitched, fill).astype(np.float32)
    b = np.where(mask, truth, fill).astype(np.float32)
    window = cv2.createHanningWindow((TILE_PX, TILE_PX), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(b, a, window)
    return (float(dx), float(dy)) if response > 0.05 else None


def offset_m(shift: tuple[float, float] | None, scale: float) -> float | None:
    """The georeferencing offset in metres of a shift in pixels (`scale` pixels per metre)."""
    return None if shift is None else float(np.hypot(*shift)) / scale


def _unmatched_share(mine: NDArray[np.bool_], unmatched: NDArray[np.bool_]) -> float | None:
    """Share of the strong stitched edges `mine` with no truth edge near (`_edges_against`):
    a mosaic that is only offset has no doubled markings (the offset is measured on its own),
    one with two copies of a line does. None with too few edges to tell."""
    if mine.sum() < 50:
        return None
    return float((mine & unmatched).sum() / mine.sum())


def not_ground(rgba: U8Image, truth_rgb: U8Image, lat: float, zoom: int) -> NDArray[np.bool_]:
    """Pixels within `NOT_GROUND_MARGIN_M` of a strong edge that a tile stitched from the true
    poses shows and the truth lacks: vehicles, which no pose can put on the bare road."""
    mask = rgba[..., 3] > 0
    mine, unmatched = _edges_against(_grey(rgba[..., :3]), _grey(truth_rgb), mask, None)
    radius = round(NOT_GROUND_MARGIN_M * px_per_metre(lat, zoom))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return np.asarray(cv2.dilate((mine & unmatched).astype(np.uint8), disk), bool)


def _edges_against(
    stitched: NDArray[np.float64],
    truth: NDArray[np.float64],
    mask: NDArray[np.bool_],
    shift: tuple[float, float] | None,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Strong stitched edges well inside the covered pixels, and where no truth edge (moved by
    `shift`) lies within `EDGE_TOLERANCE_PX`."""
    if shift is not None:
        move = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]])
        moved = cv2.warpAffine(truth, move, (TILE_PX, TILE_PX), borderMode=cv2.BORDER_REPLICATE)
        truth = np.asarray(moved, np.float64)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)

    def edges(image: NDArray[np.float64]) -> NDArray[np.bool_]:
        gx = cv2.Sobel(image, cv2.CV_64F, 1, 0)
        gy = cv2.Sobel(image, cv2.CV_64F, 0, 1)
        return np.asarray(np.hypot(gx, gy) > EDGE_THRESHOLD * 4)

    near_truth = cv2.dilate(
        edges(truth).astype(np.uint8), np.ones((2 * EDGE_TOLERANCE_PX + 1,) * 2, np.uint8)
    )
    return edges(stitched) & inner, near_truth == 0


def _grey(rgb: U8Image) -> NDArray[np.float64]:
    return np.asarray(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY), np.float64)


def tile_quality(
    rgba: U8Image,
    truth_rgb: U8Image,
    lat: float,
    zoom: int,
    vehicles: NDArray[np.bool_] | None = None,
) -> TileQuality:
    """Compare a stitched RGBA tile with its truth over the pixels it covers; `vehicles`
    (`not_ground` of the tile) is left out of the doubled-edge share."""
    mask = rgba[..., 3] > 0
    grey, truth = _grey(rgba[..., :3]), _grey(truth_rgb)
    covered = float(mask.mean())
    if covered == 0:
        return TileQuality(0.0, float("nan"), float("nan"), None, None, None)
    colour = rgba[..., :3].astype(np.float64)[mask]
    shift = phase_shift(grey, truth, mask)
    mine, unmatched = _edges_against(grey, truth, mask, shift)
    return TileQuality(
        covered,
        psnr(colour, truth_rgb.astype(np.float64)[mask]),
        float(ssim_map(grey, truth)[mask].mean()),
        offset_m(shift, px_per_metre(lat, zoom)),
        _unmatched_share(mine if vehicles is None else mine & ~vehicles, unmatched),
        _unmatched_share(mine, unmatched),
    )
