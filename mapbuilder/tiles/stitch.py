"""Blending the frames that see a tile into one image.

Each frame's pixels carry a weight (nearness to the camera, feathered edges, see `bev`), lowered
for older frames so fresh imagery replaces old. Then one robust pass: samples far from the
weighted mean lose weight (a Cauchy-like factor), so a car or a person seen by one pass of
several is voted out instead of leaving a ghost. The result is deterministic: the same samples in
any order give the same bytes (samples are sorted before summing).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from mapbuilder.tiles.bev import TileSample
from mapbuilder.tiles.mercator import TILE_PX

U8Image = NDArray[np.uint8]
DAY_S = 86_400.0


@dataclass(frozen=True)
class BlendSettings:
    """How strongly newer frames win, and what counts as an outlier colour."""

    recency_tau_s: float = 1.0 * DAY_S
    # Mean absolute channel difference (0-255) beyond which a sample is doubted.
    outlier_level: float = 24.0
    min_weight: float = 1e-9


def blend(samples: Sequence[TileSample], settings: BlendSettings | None = None) -> U8Image:
    """RGBA tile: the blended colours, alpha 255 where any frame saw the ground, else 0."""
    s = settings or BlendSettings()
    ordered = sorted(samples, key=lambda x: (x.time_s, x.row0, x.col0, x.image.tobytes()))
    out = np.zeros((TILE_PX, TILE_PX, 4), np.uint8)
    if not ordered:
        return out
    newest = max(sample.time_s for sample in ordered)
    # Ages rounded to the microsecond: the float error of subtracting POSIX times depends on the
    # absolute time, and the same frames must blend to the same bytes whenever they were taken.
    weights = [
        sample.weight * np.float32(np.exp(-round(newest - sample.time_s, 6) / s.recency_tau_s))
        for sample in ordered
    ]
    mean, seen = _accumulate(ordered, weights, s.min_weight)
    robust = []
    for sample, weight in zip(ordered, weights, strict=True):
        diff = np.abs(sample.image - mean[sample.window])
        # The mean over the channels as `mean(axis=2)` sums it, the same bits in a third of
        # the time.
        residual = (diff[..., 0] + diff[..., 1] + diff[..., 2]) / np.float32(3)
        robust.append(weight / (1.0 + (residual / s.outlier_level) ** 2))
    colours, _ = _accumulate(ordered, robust, s.min_weight)
    out[..., :3] = np.clip(np.rint(colours), 0, 255).astype(np.uint8)
    out[..., 3] = np.where(seen, 255, 0).astype(np.uint8)
    out[~seen, :3] = 0
    return out


def _accumulate(
    samples: Sequence[TileSample], weights: Sequence[NDArray[np.float32]], floor: float
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Weighted mean colour per pixel, and where any weight was."""
    total = np.zeros((TILE_PX, TILE_PX), np.float32)
    sums = np.zeros((TILE_PX, TILE_PX, 3), np.float32)
    for sample, weight in zip(samples, weights, strict=True):
        rows, cols = sample.window
        total[rows, cols] += weight
        sums[rows, cols] += weight[..., np.newaxis] * sample.image
    mean = sums / np.maximum(total, floor)[..., np.newaxis]
    return np.asarray(mean, np.float32), total > floor


def encode_png(rgba: U8Image) -> bytes:
    """A PNG of the tile (lossless, and the same bytes for the same pixels)."""
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def coverage(rgba: U8Image) -> float:
    """Share of the tile's pixels that hold imagery."""
    return float((rgba[..., 3] > 0).mean())
