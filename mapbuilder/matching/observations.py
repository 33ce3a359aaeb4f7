"""HMM observations: a stitched sequence thinned to one observation per few metres travelled."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapbuilder.geo import FloatArray
from mapbuilder.roads.network import IntArray
from mapbuilder.sequences import StitchedSequence


@dataclass(frozen=True)
class Observations:
    """One HMM observation per run of fixes closer together (along the smoothed track) than the
    thinning spacing: the mean of their positions and their mean direction of travel."""

    x: FloatArray
    y: FloatArray
    bin_of_point: IntArray  # observation of each point of the sequence
    heading_x: FloatArray  # unit vector of the direction of travel; zero where not moving
    heading_y: FloatArray


def observe(seq: StitchedSequence, *, spacing_m: float, min_speed_mps: float) -> Observations:
    """Thin a sequence: 10 Hz fixes or keyframes every few metres become one observation per
    `spacing_m` (standing still, one for the whole stop); the rest are placed on the matched path
    afterwards. The mean of a run's fixes also shrinks their independent errors."""
    sx, sy = seq.smooth_x_m, seq.smooth_y_m
    travelled = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(sx), np.diff(sy)))])
    raw_bin = np.floor(travelled / max(spacing_m, 1e-9)).astype(np.int64)
    bin_of_point = np.concatenate([[0], np.cumsum(raw_bin[1:] != raw_bin[:-1])])
    counts = np.bincount(bin_of_point)
    ox = np.bincount(bin_of_point, weights=seq.smooth_x_m) / counts
    oy = np.bincount(bin_of_point, weights=seq.smooth_y_m) / counts
    # Headings only where moving: a standing receiver's direction is noise.
    moving = np.isfinite(seq.heading_deg) & ~(seq.speed_mps < min_speed_mps)
    angle = np.radians(np.where(moving, seq.heading_deg, 0.0))
    hx = np.bincount(bin_of_point, weights=np.sin(angle) * moving).astype(np.float64)
    hy = np.bincount(bin_of_point, weights=np.cos(angle) * moving).astype(np.float64)
    norm = np.hypot(hx, hy)
    scale = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 1e-9)
    return Observations(ox, oy, bin_of_point, hx * scale, hy * scale)
