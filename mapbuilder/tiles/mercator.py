"""Web Mercator (EPSG:3857) pixel and tile arithmetic for XYZ tiles of 256 px.

Global pixel coordinates at zoom z run from 0 to 256 * 2**z, x east and y south; pixel (i, j)
of tile (x, y) covers global [256x + i, 256x + i + 1) and its centre is at +0.5.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

TILE_PX = 256
EARTH_RADIUS_M = 6_378_137.0  # the sphere Web Mercator is defined on
MAX_LAT = 85.0511287798066
MIN_ZOOM, MAX_ZOOM = 0, 24

Tile = tuple[int, int, int]  # (z, x, y)


def check_zoom(zoom: int) -> int:
    """`zoom` if it is a zoom level tiles are made for, else ValueError saying the range."""
    if not MIN_ZOOM <= zoom <= MAX_ZOOM:
        msg = f"zoom {zoom} is out of range: use {MIN_ZOOM} to {MAX_ZOOM}"
        raise ValueError(msg)
    return zoom


def world_px(lon: float, lat: float, zoom: int) -> tuple[float, float]:
    """Global pixel coordinates of a WGS84 position at `zoom`."""
    size = TILE_PX * 2**zoom
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    x = (lon + 180.0) / 360.0 * size
    y = (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * size
    return x, y


def lonlat_of_px(
    x: NDArray[np.float64], y: NDArray[np.float64], zoom: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """WGS84 degrees of global pixel coordinates (arrays)."""
    size = TILE_PX * 2**zoom
    lon = x / size * 360.0 - 180.0
    lat = np.degrees(np.arctan(np.sinh(np.pi * (1.0 - 2.0 * y / size))))
    return lon, lat


def px_per_metre(lat: float, zoom: int) -> float:
    """Pixels per ground metre at latitude `lat` (Mercator's scale grows as 1 / cos(lat))."""
    metres_per_px = (
        2 * math.pi * EARTH_RADIUS_M * math.cos(math.radians(lat)) / (TILE_PX * 2.0**zoom)
    )
    return 1.0 / metres_per_px


def tiles_covering(x0: float, y0: float, x1: float, y1: float, zoom: int) -> list[Tile]:
    """Tiles touched by the global-pixel box [x0, x1] x [y0, y1], row by row."""
    last = 2**zoom - 1
    cols = range(max(0, int(x0 // TILE_PX)), min(last, int(x1 // TILE_PX)) + 1)
    rows = range(max(0, int(y0 // TILE_PX)), min(last, int(y1 // TILE_PX)) + 1)
    return [(zoom, x, y) for y in rows for x in cols]


def tile_bounds(tile: Tile) -> tuple[float, float, float, float]:
    """(west, south, east, north) degrees of a tile."""
    z, x, y = tile
    lon, lat = lonlat_of_px(
        np.array([x * TILE_PX, (x + 1) * TILE_PX], np.float64),
        np.array([(y + 1) * TILE_PX, y * TILE_PX], np.float64),
        z,
    )
    return float(lon[0]), float(lat[0]), float(lon[1]), float(lat[1])
