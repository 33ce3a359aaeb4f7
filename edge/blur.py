"""Hiding what the detectors found: a margin around each box, then a blur nothing can undo."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from models.boxes import FloatArray

U8Image = NDArray[np.uint8]
BlurMode = Literal["gaussian", "pixelate"]
MIN_MARGIN_PX = 4
PIXELATE_BLOCKS = 6  # across the box's longer side: too few cells to hold a character or a feature


def expand(boxes: FloatArray, margin_fraction: float, width: int, height: int) -> NDArray[np.int32]:
    """Integer boxes grown by `margin_fraction` of their size (at least a few pixels) on every side."""
    if not len(boxes):
        return np.zeros((0, 4), np.int32)
    size = boxes[:, 2:] - boxes[:, :2]
    pad = np.maximum(size * margin_fraction, MIN_MARGIN_PX)
    grown = np.concatenate([boxes[:, :2] - pad, boxes[:, 2:] + pad], axis=1)
    grown = np.round(grown).astype(np.int32)
    grown[:, [0, 2]] = grown[:, [0, 2]].clip(0, width)
    grown[:, [1, 3]] = grown[:, [1, 3]].clip(0, height)
    return grown


def blur_regions(image: U8Image, regions: NDArray[np.int32], mode: BlurMode) -> U8Image:
    """A copy of `image` with every region destroyed beyond recovery."""
    out = image.copy()
    for x1, y1, x2, y2 in regions:
        if x2 <= x1 or y2 <= y1:
            continue
        roi = out[y1:y2, x1:x2]
        roi[:] = _pixelate(roi) if mode == "pixelate" else _gaussian(roi)
    return out


def _gaussian(roi: U8Image) -> U8Image:
    # Averaging first removes the fine detail a Gaussian's tails would keep; sigma scales with the box
    # so a large near plate is as unreadable as a small far one.
    sigma = max(roi.shape[:2]) / 4
    smoothed = cv2.blur(roi, (max(1, roi.shape[1] // 3), max(1, roi.shape[0] // 3)))
    return np.asarray(cv2.GaussianBlur(smoothed, (0, 0), sigmaX=sigma, sigmaY=sigma), np.uint8)


def _pixelate(roi: U8Image) -> U8Image:
    height, width = roi.shape[:2]
    cell = max(1, max(height, width) // PIXELATE_BLOCKS)
    small = cv2.resize(
        roi, (max(1, width // cell), max(1, height // cell)), interpolation=cv2.INTER_AREA
    )
    return np.asarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST), np.uint8)


def covered_fraction(regions: NDArray[np.int32], width: int, height: int) -> float:
    """Share of the image inside the union of the regions."""
    mask = np.zeros((height, width), np.uint8)
    for x1, y1, x2, y2 in regions:
        mask[y1:y2, x1:x2] = 1
    return float(mask.mean()) if mask.size else 0.0
