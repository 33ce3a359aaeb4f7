"""Blending the frames that see a tile into one image.

Each frame's pixels carry a weight (nearness to the camera, feathered edges, see `bev`), lowered
for older frames so fresh imagery replaces old. Then one robust pass: samples far from the
weighted mean lose weight (a Cauchy-like factor), so a car or a person seen by one pass of
several is voted out instead of leaving a ghost. The result is deterministic: the same samples in
any order give the same bytes (samples are sorted, sums are in float64).
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
    ordered = sorted(samples, key=lambda sample: (sample.time_s, sample.image.tobytes()))
    if not ordered:
        return np.zeros((TILE_PX, TILE_PX, 4), np.uint8)
    newest = max(sample.time_s for sample in ordered)
    images = np.stack([sample.image.astype(np.float64) for sample in ordered])
    weights = np.stack(
        [
            sample.weight.astype(np.float64) * np.exp(-(newest - sample.time_s) / s.recency_tau_s)
            for sample in ordered
        ]
    )
    mean = _weighted_mean(images, weights, s.min_weight)
    residual = np.abs(images - mean[np.newaxis]).mean(axis=3)
    robust = weights / (1.0 + (residual / s.outlier_level) ** 2)
    colours = _weighted_mean(images, robust, s.min_weight)
    seen = weights.sum(axis=0) > s.min_weight
    out = np.zeros((TILE_PX, TILE_PX, 4), np.uint8)
    out[..., :3] = np.clip(np.rint(colours), 0, 255).astype(np.uint8)
    out[..., 3] = np.where(seen, 255, 0).astype(np.uint8)
    out[~seen, :3] = 0
    return out


def _weighted_mean(
    images: NDArray[np.float64], weights: NDArray[np.float64], floor: float
) -> NDArray[np.float64]:
    total = np.maximum(weights.sum(axis=0), floor)
    return np.asarray(np.einsum("nhw,nhwc->hwc", weights, images) / total[..., np.newaxis])


def encode_png(rgba: U8Image) -> bytes:
    """A PNG of the tile (lossless, and the same bytes for the same pixels)."""
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def coverage(rgba: U8Image) -> float:
    """Share of the tile's pixels that hold imagery."""
    return float((rgba[..., 3] > 0).mean())
