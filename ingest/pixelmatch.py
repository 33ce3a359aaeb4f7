"""Pixel evidence for a near-duplicate of another device's frame: the same capture re-uploaded, or a
second capture of the same place?

A perceptual hash says only that two pictures look alike at 8 x 8 DCT detail; two cars passing the
same spot, or any two frames of a uniform street, often do. A replay (another device's image
re-encoded, resized, cropped by a few per cent, made brighter or darker) keeps every pixel where it
was, up to one shift and a monotone change of brightness. A second capture from even a metre away
does not: near things move more than far ones (parallax), a step forward scales the picture, and
traffic and exposure differ. So the two pictures are aligned by the single shift that fits best,
band-pass filtered (texture and edges; not the sky's gradient), and compared tile by tile: the
agreement is the correlation of the worst textured tile but one (a burnt-in timestamp or one local
edit does not hide a replay). The limit, `ValidationSettings.replay_min_agreement`, was chosen
on real street photos and simulated drives with `python -m bench.bench_replay`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

# Pictures are compared this wide (a 1920 px frame at 1/8 scale): enough to tell a 2 % zoom from a
# re-encode, small enough to cost a few milliseconds.
COMPARE_WIDTH_PX = 240
MAX_SHIFT = 0.08  # of the width: crops of up to 8 % on one side are still aligned
TILE_ROWS, TILE_COLS = 4, 6
TOLERATED_TILES = 1  # tiles that may disagree in a replay (an overlay, one local edit)
FINE_SIGMA_PX, COARSE_SIGMA_PX = 1.0, 4.0  # the band kept: JPEG noise below, gradients above
MIN_TILE_STD = 1.0  # grey levels of band-passed texture below which a tile says nothing
# Clipped pixels (a brightened replay saturates highlights) carry no texture; the margin covers
# the band-pass filter's reach.
CLIPPED_DARK, CLIPPED_BRIGHT, CLIP_MARGIN_PX = 4, 251, 4
MIN_VALID_SHARE = 0.5

Gray = NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class Thumbnail:
    """A frame in grey at comparison size, and the width of the full frame it was made from (a
    crop keeps the full frame's pixel pitch; a resize keeps its field of view)."""

    pixels: NDArray[np.uint8]
    width_px: int


def decode_request(width_px: int, height_px: int) -> tuple[int, int]:
    """The size to ask JPEG DCT scaling for: an eighth of the frame, but at least comparison width."""
    wanted = max(width_px // 8, min(width_px, COMPARE_WIDTH_PX))
    return wanted, max(1, height_px * wanted // width_px)


def make_thumbnail(decoded: Image.Image, width_px: int) -> Thumbnail:
    """The comparison thumbnail of a frame `width_px` wide, from its decoded (draft) grey image."""
    pixels = np.asarray(decoded.convert("L"), np.uint8)
    if pixels.shape[1] > COMPARE_WIDTH_PX:
        pixels = _resized(pixels, COMPARE_WIDTH_PX)
    return Thumbnail(pixels, width_px)


def agreement(a: Thumbnail, b: Thumbnail) -> float:
    """How well `b` repeats `a` pixel for pixel, after the best shift: about 1 for a re-encoded,
    resized, slightly cropped or brightened copy, far lower for a second capture of the place."""
    first = a.pixels.astype(np.float32)
    best = _tiled_agreement(first, _resized(b.pixels, first.shape[1]).astype(np.float32))
    if a.width_px != b.width_px:
        # A crop keeps the pixel pitch: compare at the same pitch as well as the same field of view.
        width = first.shape[1] * b.width_px / a.width_px
        best = max(best, _tiled_agreement(first, _resized(b.pixels, width).astype(np.float32)))
    return best


def _resized(pixels: NDArray[np.uint8], width: float) -> NDArray[np.uint8]:
    columns = max(8, round(width))
    if columns == pixels.shape[1]:
        return pixels
    rows = max(8, round(pixels.shape[0] * columns / pixels.shape[1]))
    return np.asarray(cv2.resize(pixels, (columns, rows), interpolation=cv2.INTER_AREA), np.uint8)


def _tiled_agreement(a: Gray, b: Gray) -> float:
    if a.size > b.size:
        a, b = b, a
    margin = max(2, round(MAX_SHIFT * a.shape[1]))
    size = (a.shape[1] - 2 * margin, a.shape[0] - 2 * margin)
    if min(size) < 8 or size[0] > b.shape[1] or size[1] > b.shape[0]:
        return 0.0
    fine_a, fine_b = _blurred(a, FINE_SIGMA_PX), _blurred(b, FINE_SIGMA_PX)
    centre = _best_shift(fine_a, fine_b, margin)
    inner = (slice(margin, margin + size[1]), slice(margin, margin + size[0]))
    texture_a = (fine_a - _blurred(a, COARSE_SIGMA_PX))[inner]
    texture_b = np.asarray(
        cv2.getRectSubPix(fine_b - _blurred(b, COARSE_SIGMA_PX), size, centre), np.float32
    )
    clipped_b = cv2.getRectSubPix(_clipped(b).astype(np.float32), size, centre)
    valid = (_clipped(a)[inner] == 0) & (clipped_b < 0.5)
    return _worst_tiles(texture_a, texture_b, valid)


def _best_shift(a: Gray, b: Gray, margin: int) -> tuple[float, float]:
    """Where in `b` the centre of `a` (less `margin` all round) fits best, to a fraction of a pixel."""
    template = np.ascontiguousarray(a[margin:-margin, margin:-margin])
    scores = np.asarray(cv2.matchTemplate(b, template, cv2.TM_CCOEFF_NORMED), np.float32)
    _, _, _, (x, y) = cv2.minMaxLoc(scores)
    dx = _vertex(scores[y, x - 1 : x + 2]) if 0 < x < scores.shape[1] - 1 else 0.0
    dy = _vertex(scores[y - 1 : y + 2, x]) if 0 < y < scores.shape[0] - 1 else 0.0
    height, width = template.shape
    return x + dx + (width - 1) / 2, y + dy + (height - 1) / 2


def _vertex(three: NDArray[np.float32]) -> float:
    """The peak of the parabola through three neighbouring scores, relative to the middle one."""
    left, middle, right = (float(v) for v in three)
    curvature = left - 2 * middle + right
    return 0.0 if curvature >= 0 else 0.5 * (left - right) / curvature


def _blurred(gray: Gray, sigma: float) -> Gray:
    return np.asarray(cv2.GaussianBlur(gray, (0, 0), sigma), np.float32)


def _clipped(gray: Gray) -> NDArray[np.uint8]:
    mask = ((gray <= CLIPPED_DARK) | (gray >= CLIPPED_BRIGHT)).astype(np.uint8)
    kernel = np.ones((2 * CLIP_MARGIN_PX + 1, 2 * CLIP_MARGIN_PX + 1), np.uint8)
    return np.asarray(cv2.dilate(mask, kernel), np.uint8)


def _worst_tiles(a: Gray, b: Gray, valid: NDArray[np.bool_]) -> float:
    """The correlation of the worst textured tile but `TOLERATED_TILES`; 0 with no textured tile.

    Per tile, over its valid pixels: zero-mean normalised cross-correlation. A tile with under
    half its pixels valid, or without texture in either picture (sky, a wall), says nothing."""
    height, width = a.shape
    rows = np.arange(height) * TILE_ROWS // height
    cols = np.arange(width) * TILE_COLS // width
    labels = rows[:, None] * TILE_COLS + cols[None, :]
    tile = labels[valid]
    x, y = a[valid].astype(np.float64), b[valid].astype(np.float64)
    count = TILE_ROWS * TILE_COLS
    size = np.bincount(labels.ravel(), minlength=count)
    n = np.bincount(tile, minlength=count)
    sums = [np.bincount(tile, weights=w, minlength=count) for w in (x, y, x * x, y * y, x * y)]
    with np.errstate(divide="ignore", invalid="ignore"):
        sx, sy, sxx, syy, sxy = sums
        var_x, var_y = sxx / n - (sx / n) ** 2, syy / n - (sy / n) ** 2
        found = (sxy / n - sx * sy / n**2) / np.sqrt(var_x * var_y)
    textured = (
        (n >= MIN_VALID_SHARE * size) & (var_x >= MIN_TILE_STD**2) & (var_y >= MIN_TILE_STD**2)
    )
    ranked = np.sort(found[textured])
    if ranked.size == 0:
        return 0.0
    return float(ranked[min(TOLERATED_TILES, ranked.size - 1)])
