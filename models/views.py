"""Which parts of a frame a detector looks at, and at what scale.

Shrinking a whole 1920x1080 frame to a 640 px model input loses plates 10-20 px tall. So each
detector sees an overview of the frame (for large, near targets) plus full-resolution views of the
band where small, distant targets can be. With a calibration the band is the rows around the horizon
(distant things sit near it); without one it is the whole frame, tiled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class View:
    """A crop of the frame (x0, y0, width, height in frame pixels) resized by `scale`."""

    x0: int
    y0: int
    width: int
    height: int
    scale: float


@dataclass(frozen=True)
class Band:
    """Rows of the frame where small targets can appear, relative to the horizon."""

    above_px: int
    below_px: int


def overview(width: int, height: int, long_side_px: int) -> View:
    """The whole frame, shrunk so its long side is at most `long_side_px`."""
    return View(0, 0, width, height, min(1.0, long_side_px / max(width, height)))


def band_rows(height: int, horizon_row: float | None, band: Band) -> tuple[int, int]:
    """First and last+1 row of the detail band, inside the frame."""
    if horizon_row is None:
        return 0, height
    top = max(0, math.floor(horizon_row - band.above_px))
    bottom = min(height, math.ceil(horizon_row + band.below_px))
    return (top, bottom) if bottom > top else (0, 0)


def tiles(
    x0: int, y0: int, width: int, height: int, tile: tuple[int, int], overlap_px: int
) -> list[View]:
    """Full-resolution tiles of at most `tile` (width, height) covering a region, overlapping by
    `overlap_px` so any target smaller than the overlap lies whole inside at least one tile."""
    tile_w, tile_h = tile
    return [
        View(x, y, min(tile_w, x0 + width - x), min(tile_h, y0 + height - y), 1.0)
        for y in _starts(y0, height, tile_h, overlap_px)
        for x in _starts(x0, width, tile_w, overlap_px)
    ]


def strips(x0: int, y0: int, width: int, height: int, max_rows: int, overlap_px: int) -> list[View]:
    """Full-width strips of at most `max_rows` covering a region, for a model that takes any size:
    as few as `tiles` would cut, but of equal height, overlapping by `overlap_px` and no more (720
    rows in strips of up to 640 are two of 440 rows, not two of 640 that are nearly the same)."""
    if height <= max_rows:
        return [View(x0, y0, width, height, 1.0)]
    count = math.ceil((height - overlap_px) / (max_rows - overlap_px))
    rows = min(max_rows, math.ceil((height + (count - 1) * overlap_px) / count))
    return tiles(x0, y0, width, height, (width, rows), overlap_px)


def _starts(origin: int, length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [origin]
    count = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (count - 1)
    return [origin + round(i * step) for i in range(count)]
