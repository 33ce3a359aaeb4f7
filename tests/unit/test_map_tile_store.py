"""Tests of the tile layers and the tile store (keys, ETags, corruption, listing)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ingest.storage import LocalObjectStore
from mapbuilder.errors import CorruptTile, TileOutOfRangeError, UnknownLayer
from mapbuilder.tiles.layers import LAYERS, layer
from mapbuilder.tiles.store import TileStore, tile_key

TILE = (21, 1_188_000, 592_000)


@pytest.fixture
def tiles(tmp_path: Path) -> TileStore:
    """A tile store over a folder-backed object store."""
    return TileStore(LocalObjectStore(tmp_path / "store"))


def test_layers_cover_the_published_kinds() -> None:
    """imagery, freshness and coverage exist with their formats and zoom ranges."""
    assert (LAYERS["imagery"].ext, LAYERS["imagery"].min_zoom, LAYERS["imagery"].max_zoom) == (
        "webp",
        14,
        21,
    )
    assert LAYERS["freshness"].kind == "raster" and LAYERS["freshness"].ext == "png"
    assert LAYERS["coverage"].kind == "vector" and LAYERS["coverage"].ext == "pbf"


def test_unknown_layer_lists_the_layers() -> None:
    """An unknown layer name is refused with the names that exist."""
    with pytest.raises(UnknownLayer, match="coverage, freshness, imagery"):
        layer("satellite")


def test_tile_key_and_range_checks() -> None:
    """Keys follow tiles/{layer}/{z}/{x}/{y}.{ext}; impossible tiles are refused."""
    assert tile_key("imagery", (3, 1, 2), "webp") == "tiles/imagery/3/1/2.webp"
    with pytest.raises(TileOutOfRangeError, match="zoom 25 is out of range"):
        tile_key("imagery", (25, 0, 0), "webp")
    with pytest.raises(TileOutOfRangeError, match="x and y run from 0 to 7"):
        tile_key("imagery", (3, 8, 0), "webp")


def test_put_get_head_list_delete(tiles: TileStore) -> None:
    """A written tile reads back with its sha256 as ETag, is listed, and can be deleted."""
    etag = tiles.put("imagery", TILE, b"tile bytes")
    assert etag == hashlib.sha256(b"tile bytes").hexdigest()
    stored = tiles.get("imagery", TILE)
    assert stored is not None and (stored.data, stored.etag) == (b"tile bytes", etag)
    assert tiles.head("imagery", TILE) == etag
    recorded = tiles.store.head(tile_key("imagery", TILE, "webp"))
    assert recorded is not None and recorded.content_type == "image/webp"
    assert list(tiles.list("imagery")) == [TILE]
    assert list(tiles.list("imagery", zoom=20)) == []
    tiles.delete("imagery", TILE)
    assert tiles.get("imagery", TILE) is None and tiles.head("imagery", TILE) is None


def test_zoom_outside_the_layer_is_refused(tiles: TileStore) -> None:
    """A tile at a zoom its layer does not store is refused with the layer's range."""
    with pytest.raises(TileOutOfRangeError, match="use 14 to 21"):
        tiles.put("imagery", (13, 0, 0), b"x")
    with pytest.raises(TileOutOfRangeError, match="use 10 to 18"):
        tiles.get("freshness", (19, 0, 0))


def test_bit_rot_raises_corrupt_tile(tiles: TileStore, tmp_path: Path) -> None:
    """Bytes damaged in place (same size and mtime) no longer match the record: CorruptTile."""
    tiles.put("imagery", TILE, b"tile bytes")
    path = tmp_path / "store" / tile_key("imagery", TILE, "webp")
    info = path.stat()
    with path.open("r+b") as handle:
        handle.write(b"T")
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    with pytest.raises(CorruptTile, match="mark it dirty"):
        tiles.get("imagery", TILE)


def test_rewritten_bytes_differ_from_the_built_etag(tiles: TileStore, tmp_path: Path) -> None:
    """Bytes replaced behind the builder's back do not match the ETag the catalog expects."""
    etag = tiles.put("imagery", TILE, b"tile bytes")
    path = tmp_path / "store" / tile_key("imagery", TILE, "webp")
    path.write_bytes(b"garbage")
    with pytest.raises(CorruptTile, match="is not the ETag"):
        tiles.get("imagery", TILE, expected_etag=etag)
