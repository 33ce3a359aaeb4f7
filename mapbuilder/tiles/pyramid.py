"""Lower zooms of a raster layer: each tile made from its four children, as stored.

Children are averaged over 2x2 pixels with premultiplied alpha, so transparent pixels (no
imagery) neither darken their neighbours nor count as imagery; the result is deterministic.
"""

from __future__ import annotations

import numpy as np

from mapbuilder.tiles.bev import U8Image
from mapbuilder.tiles.mercator import TILE_PX, Tile


def children_of(tile: Tile) -> list[Tile]:
    """The four tiles one zoom higher that `tile` covers: NW, NE, SW, SE."""
    z, x, y = tile
    return [(z + 1, 2 * x + dx, 2 * y + dy) for dy in (0, 1) for dx in (0, 1)]


def downsample(children: list[U8Image | None]) -> U8Image | None:
    """The parent tile (RGBA) of four children (NW, NE, SW, SE; None: absent); None when all are."""
    if all(child is None for child in children):
        return None
    canvas = np.zeros((2 * TILE_PX, 2 * TILE_PX, 4), np.float32)
    for k, child in enumerate(children):
        if child is None:
            continue
        rows = slice((k // 2) * TILE_PX, (k // 2 + 1) * TILE_PX)
        cols = slice((k % 2) * TILE_PX, (k % 2 + 1) * TILE_PX)
        alpha = child[..., 3:4].astype(np.float32)
        canvas[rows, cols, :3] = child[..., :3].astype(np.float32) * alpha / 255.0
        canvas[rows, cols, 3:4] = alpha
    small = canvas.reshape(TILE_PX, 2, TILE_PX, 2, 4).mean(axis=(1, 3))
    alpha = small[..., 3]
    out = np.zeros((TILE_PX, TILE_PX, 4), np.uint8)
    seen = alpha > 0
    colour = small[..., :3] * 255.0 / np.maximum(alpha, 1e-6)[..., np.newaxis]
    out[..., :3] = np.where(seen[..., np.newaxis], np.clip(np.rint(colour), 0, 255), 0)
    out[..., 3] = np.clip(np.rint(alpha), 0, 255)
    out[out[..., 3] == 0, :3] = 0
    return out
