"""Server-side over-zoom for vector tiles: a child tile cut from its stored parent.

MVT coordinates are relative to the tile, so a parent's bytes cannot be served as a child: the
geometry is scaled by 2**dz, shifted to the child's corner, and clipped to the child (with a small
buffer so that line joins and labels do not break at tile edges). Properties are kept as they are.
"""

from __future__ import annotations

from typing import Any

import mapbox_vector_tile
from shapely import GeometryCollection
from shapely.affinity import affine_transform
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from mapbuilder.tiles.mercator import Tile

BUFFER_UNITS = 64  # of the tile extent (usually 4096): what MapLibre's own over-zoom keeps too
_OPTIONS = {"y_coord_down": True}


def parent_at(tile: Tile, zoom: int) -> Tile:
    """The ancestor of `tile` at `zoom` (<= the tile's zoom)."""
    z, x, y = tile
    shift = z - zoom
    return zoom, x >> shift, y >> shift


def overzoom(data: bytes, parent: Tile, child: Tile) -> bytes:
    """The MVT of `child` (a descendant of `parent`) cut from the parent's MVT bytes."""
    shift = child[0] - parent[0]
    scale = 2**shift
    col = child[1] - (parent[1] << shift)
    row = child[2] - (parent[2] << shift)
    decoded: dict[str, Any] = mapbox_vector_tile.decode(data, default_options=_OPTIONS)
    layers = []
    extent = 4096
    for name, layer in decoded.items():
        extent = int(layer.get("extent", extent))
        clip = box(-BUFFER_UNITS, -BUFFER_UNITS, extent + BUFFER_UNITS, extent + BUFFER_UNITS)
        matrix = [scale, 0, 0, scale, -col * extent, -row * extent]
        features = []
        for feature in layer["features"]:
            cut = _cut(shape(feature["geometry"]), matrix, clip)
            if cut is not None:
                features.append(
                    {"geometry": cut, "properties": feature["properties"], "id": feature.get("id")}
                )
        layers.append({"name": name, "features": features})
    encoded: bytes = mapbox_vector_tile.encode(
        layers, default_options={**_OPTIONS, "extents": extent}
    )
    return encoded


def _cut(geometry: BaseGeometry, matrix: list[float], clip: BaseGeometry) -> BaseGeometry | None:
    """The geometry moved into the child's frame and clipped; None when nothing is left."""
    cut = affine_transform(geometry, matrix).intersection(clip)
    if isinstance(cut, GeometryCollection) and not cut.is_empty:
        # A line clipped at a corner may leave a point; keep the parts of the original kind.
        kind = geometry.geom_type.removeprefix("Multi")
        parts = [part for part in cut.geoms if part.geom_type.removeprefix("Multi") == kind]
        cut = parts[0] if len(parts) == 1 else GeometryCollection(parts)
    if cut.is_empty or isinstance(cut, GeometryCollection):
        return None
    return cut
