"""Tiles in the object store: one key per layer and tile, a content-hash ETag, corruption caught.

Keys are `tiles/{layer}/{z}/{x}/{y}.{ext}`. A tile's ETag is the sha256 (hex) of its bytes, which
the object store records when the tile is written; `TileStore.get` checks the bytes it read against
that record (and against the ETag the caller expects, when it knows one), so a tile damaged at rest
raises `CorruptTile` instead of being served.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ingest.errors import ObjectCorruptError, ObjectNotFoundError
from ingest.storage import ObjectStore
from mapbuilder.errors import CorruptTile, TileOutOfRangeError
from mapbuilder.tiles.layers import LayerSpec, layer
from mapbuilder.tiles.mercator import MAX_ZOOM, MIN_ZOOM, Tile

TILES_PREFIX = "tiles"
_KEY_TAIL = re.compile(r"(\d+)/(\d+)/(\d+)\.([a-z]+)")


@dataclass(frozen=True)
class StoredTile:
    """A tile's bytes and its ETag (sha256 hex of the bytes)."""

    data: bytes
    etag: str


def check_tile(tile: Tile) -> Tile:
    """`tile` when its zoom, column and row exist, else `TileOutOfRangeError` saying the valid range."""
    z, x, y = tile
    if not MIN_ZOOM <= z <= MAX_ZOOM:
        msg = f"tile {z}/{x}/{y}: zoom {z} is out of range, use {MIN_ZOOM} to {MAX_ZOOM}"
        raise TileOutOfRangeError(msg)
    last = 2**z - 1
    if not (0 <= x <= last and 0 <= y <= last):
        msg = f"tile {z}/{x}/{y} does not exist: at zoom {z} x and y run from 0 to {last}"
        raise TileOutOfRangeError(msg)
    return tile


def check_layer_zoom(spec: LayerSpec, zoom: int) -> int:
    """`zoom` when the layer stores tiles at it, else `TileOutOfRangeError` naming its zoom range."""
    if not spec.min_zoom <= zoom <= spec.max_zoom:
        msg = (
            f"layer {spec.name!r} has no tiles at zoom {zoom}: "
            f"use {spec.min_zoom} to {spec.max_zoom}"
        )
        raise TileOutOfRangeError(msg)
    return zoom


def tile_key(layer: str, tile: Tile, ext: str) -> str:
    """The object key of a tile: `tiles/{layer}/{z}/{x}/{y}.{ext}` (tile range checked)."""
    z, x, y = check_tile(tile)
    return f"{TILES_PREFIX}/{layer}/{z}/{x}/{y}.{ext}"


def etag_of(data: bytes) -> str:
    """The ETag of tile bytes: their sha256 in hex."""
    return hashlib.sha256(data).hexdigest()


class TileStore:
    """Tiles of the published layers, kept in an `ObjectStore` (atomic writes, checked reads)."""

    def __init__(self, store: ObjectStore) -> None:
        """Keep tiles in `store`."""
        self.store = store

    def put(self, layer_name: str, tile: Tile, data: bytes) -> str:
        """Write a tile atomically with its layer's media type; return its ETag."""
        spec = layer(layer_name)
        key = self._key(spec, tile)
        return self.store.put_bytes(key, data, content_type=spec.media_type).sha256

    def get(
        self, layer_name: str, tile: Tile, *, expected_etag: str | None = None
    ) -> StoredTile | None:
        """The tile's bytes and ETag, None when absent; `CorruptTile` when the bytes are damaged.

        The bytes are checked against the sha256 the store recorded and, when given, against
        `expected_etag` (what the catalog recorded when the tile was built).
        """
        key = self._key(layer(layer_name), tile)
        before = self.store.head(key)
        if before is None:
            return None
        try:
            data = self.store.get_bytes(key)
        except ObjectNotFoundError:
            return None
        except ObjectCorruptError as error:
            raise _corrupt(key, str(error)) from None
        etag = etag_of(data)
        if etag != before.sha256:
            self._check_rewritten(key, etag, before.sha256)
        if expected_etag is not None and etag != expected_etag:
            raise _corrupt(
                key, f"its sha256 {etag} is not the ETag {expected_etag} it was built with"
            )
        return StoredTile(data, etag)

    def head(self, layer_name: str, tile: Tile) -> str | None:
        """The tile's ETag as the store recorded it, without reading the bytes; None when absent."""
        obj = self.store.head(self._key(layer(layer_name), tile))
        return None if obj is None else obj.sha256

    def delete(self, layer_name: str, tile: Tile) -> None:
        """Remove the tile (absent is not an error)."""
        self.store.delete(self._key(layer(layer_name), tile))

    def list(self, layer_name: str, zoom: int | None = None) -> Iterator[Tile]:
        """The stored tiles of a layer (of one zoom when given), in key order."""
        spec = layer(layer_name)
        prefix = f"{TILES_PREFIX}/{spec.name}/"
        if zoom is not None:
            prefix += f"{check_layer_zoom(spec, zoom)}/"
        return _tiles_under(self.store, prefix, spec.ext)

    def _key(self, spec: LayerSpec, tile: Tile) -> str:
        """The key of a tile of `spec`, after checking the layer stores that zoom."""
        check_layer_zoom(spec, tile[0])
        return tile_key(spec.name, tile, spec.ext)

    def _check_rewritten(self, key: str, etag: str, recorded: str) -> None:
        """Accept bytes that differ from the record only because the tile was rewritten meanwhile."""
        # A concurrent rebuild may replace the tile between the head and the read; then a
        # second head names the new bytes. Anything else is damage at rest.
        now = self.store.head(key)
        if now is not None and now.sha256 == etag:
            return
        raise _corrupt(key, f"its sha256 {etag} is not the {recorded} the store recorded")


def _corrupt(key: str, why: str) -> CorruptTile:
    """The error for a damaged tile, saying what to do."""
    return CorruptTile(
        f"tile {key} is corrupt ({why}): mark it dirty so the next build rewrites it"
    )


def _tiles_under(store: ObjectStore, prefix: str, ext: str) -> Iterator[Tile]:
    """Parse the tile keys under `prefix`, skipping foreign objects."""
    layer_prefix = prefix.split("/", 2)
    base = f"{layer_prefix[0]}/{layer_prefix[1]}/"
    for obj in store.list(prefix):
        match = _KEY_TAIL.fullmatch(obj.key.removeprefix(base))
        if match and match.group(4) == ext:
            yield int(match.group(1)), int(match.group(2)), int(match.group(3))
