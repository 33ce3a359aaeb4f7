"""Deterministic procedural textures, continuous across chunk borders.

Every value is a hash of global pixel (or lattice) coordinates and the world seed, so any chunk can be
rendered alone, in any order, and still join its neighbours seamlessly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

U8Image = NDArray[np.uint8]
FloatImage = NDArray[np.float32]

_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _hash_unit(ix: NDArray[np.int64], iy: NDArray[np.int64], seed: int) -> FloatImage:
    """Uniform values in [0, 1) from integer coordinates (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        ix, iy = np.broadcast_arrays(ix, iy)
        h = ix.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        h ^= iy.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        h ^= np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x165667B19E3779F9)
        h ^= h >> np.uint64(30)
        h *= _MIX_1
        h ^= h >> np.uint64(27)
        h *= _MIX_2
        h ^= h >> np.uint64(31)
    return ((h >> np.uint64(40)).astype(np.float32)) / np.float32(1 << 24)


def white_noise(x0: int, y0: int, width: int, height: int, seed: int) -> FloatImage:
    """Per-pixel uniform noise in [-0.5, 0.5) for the pixel window starting at (x0, y0)."""
    ys, xs = np.mgrid[y0 : y0 + height, x0 : x0 + width].astype(np.int64)
    return _hash_unit(xs, ys, seed) - np.float32(0.5)


def value_noise(x0: int, y0: int, width: int, height: int, cell_px: int, seed: int) -> FloatImage:
    """Smooth noise in [-0.5, 0.5): bilinearly interpolated hashes on a lattice of `cell_px` pixels."""
    gx = (np.arange(x0, x0 + width, dtype=np.float64) + 0.5) / cell_px
    gy = (np.arange(y0, y0 + height, dtype=np.float64) + 0.5) / cell_px
    ix0, iy0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    fx = _smooth(gx - ix0).astype(np.float32)[None, :]
    fy = _smooth(gy - iy0).astype(np.float32)[:, None]
    lx = np.arange(ix0.min(), ix0.max() + 2, dtype=np.int64)
    ly = np.arange(iy0.min(), iy0.max() + 2, dtype=np.int64)
    lattice = _hash_unit(lx[None, :], ly[:, None], seed)
    cx, cy = ix0 - lx[0], iy0 - ly[0]
    top = lattice[cy][:, cx] * (1 - fx) + lattice[cy][:, cx + 1] * fx
    bottom = lattice[cy + 1][:, cx] * (1 - fx) + lattice[cy + 1][:, cx + 1] * fx
    return np.asarray(top * (1 - fy) + bottom * fy - np.float32(0.5), dtype=np.float32)


def _smooth(t: NDArray[np.float64]) -> NDArray[np.float64]:
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class Material:
    """A surface: base colour (BGR) and how strongly fine grain and large blotches vary it."""

    name: str
    bgr: tuple[int, int, int]
    grain: float
    blotch: float
    blotch_cell_px: int
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)


GRASS = Material("grass", (55, 112, 72), grain=40, blotch=60, blotch_cell_px=60, tint=(0.6, 1, 0.8))
PAVEMENT = Material("pavement", (150, 152, 150), grain=26, blotch=24, blotch_cell_px=30)
ASPHALT = Material("asphalt", (72, 72, 74), grain=30, blotch=34, blotch_cell_px=80)
PAINT = Material("paint", (222, 224, 224), grain=16, blotch=36, blotch_cell_px=12)


def material_texture(
    material: Material, x0: int, y0: int, width: int, height: int, seed: int
) -> U8Image:
    """The material's texture over a window of global pixels."""
    salt = seed * 7919 + sum(map(ord, material.name))
    shade = material.grain * white_noise(x0, y0, width, height, salt)
    shade += material.blotch * value_noise(x0, y0, width, height, material.blotch_cell_px, salt + 1)
    shade += 0.5 * material.blotch * value_noise(x0, y0, width, height, 7, salt + 2)
    base = np.array(material.bgr, dtype=np.float32)
    tint = np.array(material.tint, dtype=np.float32)
    out = base[None, None, :] + shade[:, :, None] * tint[None, None, :]
    return np.clip(out, 0, 255).astype(np.uint8)
