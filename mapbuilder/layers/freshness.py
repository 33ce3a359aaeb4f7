"""The `freshness` layer: PNG tiles of the roads coloured by the age of their last capture.

Each 20 m bin of a segment (either direction) takes the colour of its age bucket at build time;
roads never captured are grey, everything else is transparent. Newer bins are drawn over older
ones. Colours are a fixed, discrete ramp (ColorBrewer RdYlGn), so the legend is exact and a
tile rebuilt from the same catalog in the same age buckets has the same bytes.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from mapbuilder.layers.geometry import tile_px
from mapbuilder.layers.stats import SegmentCoverage
from mapbuilder.tiles.mercator import TILE_PX, Tile, px_per_metre

DAY_S = 86_400.0
MIN_LINE_PX = 2.0  # roads stay visible at low zooms, where they are under a pixel wide
SUBPIXEL_BITS = 4  # OpenCV draws at 1/16 px


@dataclass(frozen=True)
class AgeBucket:
    """Ages below `max_age_days` (inf: any older) are drawn in `rgba`."""

    label: str
    max_age_days: float
    rgba: tuple[int, int, int, int]


RAMP: tuple[AgeBucket, ...] = (
    AgeBucket("under 1 day", 1.0, (26, 152, 80, 255)),
    AgeBucket("1 to 7 days", 7.0, (145, 207, 96, 255)),
    AgeBucket("7 to 30 days", 30.0, (217, 239, 139, 255)),
    AgeBucket("30 to 90 days", 90.0, (254, 224, 139, 255)),
    AgeBucket("90 to 365 days", 365.0, (252, 141, 89, 255)),
    AgeBucket("over 1 year", math.inf, (215, 48, 39, 255)),
)
NEVER = AgeBucket("never captured", math.nan, (158, 158, 158, 160))
"""Drawn first, under every captured bin."""


def legend() -> list[dict[str, object]]:
    """The ramp as a document (TileJSON, the viewer, the README)."""
    return [
        {
            "label": b.label,
            "max_age_days": None if math.isinf(b.max_age_days) else b.max_age_days,
            "rgba": list(b.rgba),
        }
        for b in (*RAMP, NEVER)
    ]


def bucket_of(age_days: NDArray[np.float64]) -> NDArray[np.int64]:
    """Ramp index of each age (days); -1 for never captured (NaN). Captures from the future
    (clock skew) count as fresh."""
    bounds = np.array([b.max_age_days for b in RAMP[:-1]])
    index = np.searchsorted(bounds, np.maximum(age_days, 0.0), side="right").astype(np.int64)
    return np.where(np.isnan(age_days), -1, index)


def line_width_px(segment: SegmentCoverage, zoom: int) -> float:
    """The drawn width of a road: its real width, at least MIN_LINE_PX."""
    lat = segment.lonlat[0][1]
    return max(MIN_LINE_PX, segment.width_m * px_per_metre(lat, zoom))


def runs(buckets: NDArray[np.int64]) -> list[tuple[int, int, int]]:
    """Consecutive bins in the same bucket, as (bucket, first bin, bin after the last)."""
    cuts = [0, *(np.flatnonzero(np.diff(buckets)) + 1).tolist(), len(buckets)]
    return [(int(buckets[a]), a, b) for a, b in itertools.pairwise(cuts)]


def piece(points: NDArray[np.float64], start: float, end: float) -> NDArray[np.float64]:
    """The part of the polyline `points` between the fractions `start` and `end` of its length."""
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
    first, last = start * along[-1], min(1.0, end) * along[-1]
    inside = (along > first) & (along < last)
    ends = [
        [np.interp(v, along, points[:, 0]), np.interp(v, along, points[:, 1])]
        for v in (first, last)
    ]
    return np.vstack([ends[0], points[inside], ends[1]])


def _masks(
    tile: Tile, segments: Sequence[SegmentCoverage], now: datetime
) -> dict[int, NDArray[np.uint8]]:
    """Per bucket (-1: never), the anti-aliased coverage mask of the road pixels in it."""
    masks: dict[int, NDArray[np.uint8]] = {}
    scale = 1 << SUBPIXEL_BITS
    for segment in sorted(segments, key=lambda s: s.segment_id):
        points = tile_px(segment.lonlat, tile)
        age_days = (now.timestamp() - segment.bin_last_capture_s()) / DAY_S
        fraction = segment.bin_length_m / segment.length_m if segment.length_m else 1.0
        thickness = round(line_width_px(segment, tile[0]))
        # Bins in one bucket are drawn as one line: no seams, and far fewer calls.
        for bucket, first, after in runs(bucket_of(age_days)):
            mask = masks.setdefault(bucket, np.zeros((TILE_PX, TILE_PX), np.uint8))
            line = piece(points, first * fraction, after * fraction)
            fixed = np.round(line * scale).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(mask, [fixed], False, 255, thickness, cv2.LINE_AA, SUBPIXEL_BITS)
    return masks


def composite(masks: dict[int, NDArray[np.uint8]]) -> NDArray[np.uint8]:
    """RGBA pixels of the masks painted in their colours: never captured first, then old to
    fresh, each over the ones before it."""
    order = sorted(masks, key=lambda b: (b >= 0, -b))
    colours = [NEVER.rgba if b < 0 else RAMP[b].rgba for b in order]
    if len(order) == 1:  # the common case: one colour, only its coverage varies
        rgba = np.empty((TILE_PX, TILE_PX, 4), np.uint8)
        rgba[..., :3] = colours[0][:3]
        rgba[..., 3] = (masks[order[0]].astype(np.uint16) * colours[0][3] + 127) // 255
        return rgba
    premultiplied = np.zeros((TILE_PX, TILE_PX, 3), np.float32)
    alpha = np.zeros((TILE_PX, TILE_PX), np.float32)
    for bucket, colour in zip(order, colours, strict=True):
        a = masks[bucket].astype(np.float32) * np.float32(colour[3] / 255.0 / 255.0)
        premultiplied *= (1 - a)[..., None]
        premultiplied += np.array(colour[:3], np.float32) * a[..., None]
        alpha = alpha * (1 - a) + a
    out = np.empty((TILE_PX, TILE_PX, 4), np.uint8)
    out[..., :3] = np.clip(
        np.rint(premultiplied / np.where(alpha > 0, alpha, 1)[..., None]), 0, 255
    )
    out[..., 3] = np.clip(np.rint(alpha * 255), 0, 255)
    return out


def render_freshness_tile(
    tile: Tile, segments: Sequence[SegmentCoverage], now: datetime
) -> bytes | None:
    """PNG bytes of `tile`, or None when no road reaches it."""
    masks = _masks(tile, segments, now)
    if not any(mask.any() for mask in masks.values()):
        return None
    image = Image.fromarray(composite(masks), "RGBA")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()
