"""Road segments in Web Mercator pixels: where they lie in a tile, and which tiles they touch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mapbuilder.roads.segment import BBox
from mapbuilder.tiles.mercator import MAX_LAT, TILE_PX, Tile, lonlat_of_px, tiles_covering


def global_px(lonlat: Sequence[tuple[float, float]], zoom: int) -> NDArray[np.float64]:
    """Global pixel coordinates (n x 2) of a line's points at `zoom` (`world_px`, vectorised)."""
    points = np.asarray(lonlat, np.float64).reshape(-1, 2)
    size = TILE_PX * 2.0**zoom
    lat = np.radians(np.clip(points[:, 1], -MAX_LAT, MAX_LAT))
    x = (points[:, 0] + 180.0) / 360.0 * size
    y = (1.0 - np.arcsinh(np.tan(lat)) / np.pi) / 2.0 * size
    return np.column_stack([x, y])


def tile_px(
    lonlat: Sequence[tuple[float, float]], tile: Tile, scale: float = 1.0
) -> NDArray[np.float64]:
    """A line's points in the pixels of `tile` (origin at its top-left corner), times `scale`."""
    z, x, y = tile
    return (global_px(lonlat, z) - np.array([x * TILE_PX, y * TILE_PX], np.float64)) * scale


def tiles_touching(
    lonlat: Sequence[tuple[float, float]], zoom: int, *, margin_px: float
) -> list[Tile]:
    """Tiles of `zoom` within `margin_px` of the line's bounding box."""
    points = global_px(lonlat, zoom)
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return tiles_covering(x0 - margin_px, y0 - margin_px, x1 + margin_px, y1 + margin_px, zoom)


def tile_box(tile: Tile, *, margin_px: float) -> BBox:
    """(west, south, east, north) degrees of a tile grown by `margin_px` on every side."""
    z, x, y = tile
    xs = np.array([x * TILE_PX - margin_px, (x + 1) * TILE_PX + margin_px], np.float64)
    ys = np.array([(y + 1) * TILE_PX + margin_px, y * TILE_PX - margin_px], np.float64)
    lon, lat = lonlat_of_px(xs, ys, z)
    return float(lon[0]), float(lat[0]), float(lon[1]), float(lat[1])
