"""A small in-process cache of verified tiles, so hot tiles skip the store and the hash check.

Stored tiles only change when a build rewrites them, and clients cache them for minutes anyway
(Cache-Control), so an entry is trusted for `ttl_s` seconds and then looked up again. The cache
holds at most `max_bytes`, dropping the least recently used tiles first. It is per process and
never shared: nothing in it needs to agree across workers.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from mapbuilder.tiles.mercator import Tile


@dataclass(frozen=True)
class CachedTile:
    """Bytes ready to send, their ETag, and when they were read from the store (monotonic s)."""

    data: bytes
    etag: str
    read_at: float


class TileCache:
    """LRU of (layer, tile) -> CachedTile, bounded in bytes, entries valid for `ttl_s`."""

    def __init__(self, *, ttl_s: float, max_bytes: int) -> None:
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, Tile], CachedTile] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, layer: str, tile: Tile) -> CachedTile | None:
        """The cached tile while it is fresh, else None."""
        with self._lock:
            entry = self._entries.get((layer, tile))
            if entry is None:
                return None
            if time.monotonic() - entry.read_at > self.ttl_s:
                self._drop((layer, tile))
                return None
            self._entries.move_to_end((layer, tile))
            return entry

    def put(self, layer: str, tile: Tile, data: bytes, etag: str) -> None:
        """Remember a tile just read and verified; tiles larger than the cache are not kept."""
        if self.ttl_s <= 0 or len(data) > self.max_bytes:
            return
        with self._lock:
            self._drop((layer, tile))
            self._entries[(layer, tile)] = CachedTile(data, etag, time.monotonic())
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: tuple[str, Tile]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.data)
