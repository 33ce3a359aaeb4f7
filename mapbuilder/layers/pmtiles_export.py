"""A PMTiles v3 snapshot of one layer from the tile store, written with the `pmtiles` package.

The archive is written to a temporary file beside the target and renamed over it only when
complete, so a failed export (a corrupt tile, a full disk) leaves any earlier snapshot untouched
and never half a file. Vector tiles are gzip-compressed inside the archive, as PMTiles readers
expect of MVT; raster tiles are stored as they are.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

from mapbuilder.errors import MapError
from mapbuilder.layers.freshness import legend
from mapbuilder.layers.vector import FIELDS, LAYER_NAME
from mapbuilder.tiles.layers import LayerSpec, layer
from mapbuilder.tiles.mercator import Tile, tile_bounds
from mapbuilder.tiles.store import TileStore

TILE_TYPES = {"pbf": TileType.MVT, "png": TileType.PNG, "webp": TileType.WEBP}


class ExportError(MapError):
    """A layer cannot be exported."""


class EmptyLayerError(ExportError):
    """The layer has no tile in the store."""


class UnwritableExportError(ExportError):
    """The archive cannot be written where it was asked for."""


@dataclass(frozen=True)
class Exported:
    """What an export wrote."""

    layer: str
    path: Path
    tiles: int
    bytes: int
    min_zoom: int
    max_zoom: int
    bounds: tuple[float, float, float, float]


def _bounds(tiles: list[Tile]) -> tuple[float, float, float, float]:
    """(west, south, east, north) of the tiles of the highest zoom (the most precise)."""
    top = max(z for z, _, _ in tiles)
    boxes = [tile_bounds(t) for t in tiles if t[0] == top]
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def metadata(spec: LayerSpec, tiles: list[Tile]) -> dict[str, Any]:
    """The archive's JSON metadata (TileJSON names), with `vector_layers` for MVT."""
    zooms = [z for z, _, _ in tiles]
    document: dict[str, Any] = {
        "name": f"roadswarm {spec.name}",
        "description": spec.description,
        "format": spec.ext,
        "type": "overlay",
        "bounds": list(_bounds(tiles)),
        "minzoom": min(zooms),
        "maxzoom": max(zooms),
        "attribution": "roadswarm contributors",
    }
    if spec.kind == "vector":
        document["vector_layers"] = [
            {"id": LAYER_NAME, "fields": FIELDS, "minzoom": min(zooms), "maxzoom": max(zooms)}
        ]
    if spec.name == "freshness":
        document["legend"] = legend()
    return document


def _header(spec: LayerSpec, tiles: list[Tile]) -> dict[str, Any]:
    west, south, east, north = _bounds(tiles)
    zooms = [z for z, _, _ in tiles]
    return {
        "tile_type": TILE_TYPES[spec.ext],
        "tile_compression": Compression.GZIP if spec.kind == "vector" else Compression.NONE,
        "min_lon_e7": int(west * 1e7),
        "min_lat_e7": int(south * 1e7),
        "max_lon_e7": int(east * 1e7),
        "max_lat_e7": int(north * 1e7),
        "center_zoom": min(zooms),
        "center_lon_e7": int((west + east) / 2 * 1e7),
        "center_lat_e7": int((south + north) / 2 * 1e7),
    }


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A temporary file beside `path`, renamed over it when the block succeeds, else removed."""
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        msg = f"cannot write {path} ({exc.strerror}): choose a writable folder for --pmtiles"
        raise UnwritableExportError(msg) from exc
    temp = Path(name)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not land before the bytes do
        temp.replace(path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        msg = f"cannot write {path} ({exc.strerror}): check free space and permissions"
        raise UnwritableExportError(msg) from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def export_pmtiles(tiles: TileStore, layer_name: str, path: Path) -> Exported:
    """Write every stored tile of the layer into a PMTiles archive at `path` (atomically).

    Raises `UnknownLayer`, `ExportError` (no tiles, unwritable target) or `CorruptTile` (a stored
    tile is damaged: rebuild the layer; the target is left as it was).
    """
    spec = layer(layer_name)
    found = sorted(tiles.list(spec.name), key=lambda t: zxy_to_tileid(*t))
    if not found:
        msg = (
            f"layer {spec.name!r} has no tiles in the store: build it first "
            "(coverage and freshness: `roadswarm map layers build --all`; or run the demo)"
        )
        raise EmptyLayerError(msg)
    written = 0
    with _replacing(path) as handle:
        writer = Writer(handle)
        try:
            for tile in found:
                stored = tiles.get(spec.name, tile)
                if stored is None:  # deleted by a concurrent rebuild: the archive lacks it
                    continue
                data = stored.data
                if spec.kind == "vector":
                    data = gzip.compress(data, mtime=0)
                writer.write_tile(zxy_to_tileid(*tile), data)
                written += 1
            writer.finalize(_header(spec, found), metadata(spec, found))
        finally:
            writer.tile_f.close()  # the writer's spill file, closed by it only in finalize
    zooms = [z for z, _, _ in found]
    return Exported(
        spec.name, path, written, path.stat().st_size, min(zooms), max(zooms), _bounds(found)
    )
