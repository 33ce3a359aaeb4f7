"""A small in-process cache of verified tiles, so hot tiles skip the store and the hash check.

Stored tiles only change when a build rewrites them, and clients cache them for minutes anyway
(Cache-Control), so an entry is trusted for `ttl_s` seconds. Entries still in use are checked
against the store in the background before that (`due` and `renew`: the app's lifespan runs
`tiles_api.revalidate`), which costs a HEAD and no read; an unchanged tile stays cached, a rebuilt
one is dropped. So no request waits for an unchanged tile to be read again: when every hot entry
expired at once and was read again by the requests themselves, those reads were the slowest 1-2 %
of the answers under load, the p99. An entry nobody asks for simply expires. The cache holds at
most `max_bytes`, dropping the least recently used tiles first. It is per process and never
shared: nothing in it needs to agree across workers.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from mapbuilder.tiles.mercator import Tile

Key = tuple[str, Tile]


@dataclass(frozen=True)
class CachedTile:
    """Bytes ready to send, their ETag, when they were last known to match the store (monotonic
    s), and the ETag of the stored tile they came from (a parent's, for an over-zoomed tile)."""

    data: bytes
    etag: str
    read_at: float
    stored_etag: str = ""


class TileCache:
    """LRU of (layer, tile) -> CachedTile, bounded in bytes, entries valid for `ttl_s`."""

    def __init__(
        self, *, ttl_s: float, max_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.clock = clock
        self._entries: OrderedDict[Key, CachedTile] = OrderedDict()
        self._used_at: dict[Key, float] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, layer: str, tile: Tile) -> CachedTile | None:
        """The cached tile while it is fresh, else None."""
        key = (layer, tile)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            now = self.clock()
            if now - entry.read_at > self.ttl_s:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            self._used_at[key] = now
            return entry

    def put(self, layer: str, tile: Tile, data: bytes, etag: str, stored_etag: str = "") -> None:
        """Remember a tile just read and verified; tiles larger than the cache are not kept."""
        if self.ttl_s <= 0 or len(data) > self.max_bytes:
            return
        key = (layer, tile)
        with self._lock:
            self._drop(key)
            self._entries[key] = CachedTile(data, etag, self.clock(), stored_etag or etag)
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def due(self, *, age_s: float) -> list[tuple[str, Tile, CachedTile]]:
        """Entries known to match the store `age_s` ago or longer and asked for since: to check."""
        now = self.clock()
        with self._lock:
            return [
                (layer, tile, entry)
                for (layer, tile), entry in self._entries.items()
                if now - entry.read_at >= age_s
                and self._used_at.get((layer, tile), -1.0) > entry.read_at
            ]

    def renew(self, layer: str, tile: Tile, entry: CachedTile, *, checked_at: float) -> None:
        """Trust `entry` again from `checked_at` (when the store was seen to still hold its tile)."""
        with self._lock:
            if self._entries.get((layer, tile)) is entry:
                self._entries[(layer, tile)] = replace(entry, read_at=checked_at)

    def drop(self, layer: str, tile: Tile) -> None:
        """Forget a tile (the store holds another one now, or none)."""
        with self._lock:
            self._drop((layer, tile))

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        self._used_at.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.data)
