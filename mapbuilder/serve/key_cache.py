"""API keys looked up once per process and trusted for a few seconds, not read on every request.

A key's row only changes when an operator revokes it, so each process keeps the rows it has read
for `ttl_s` seconds: a revoked key is refused by every process within that time. Rows of keys in
use are read again in the background before then (`refresh_due`, run by the app's lifespan), so
requests do not all miss the cache together when a busy key's entry runs out. The secret is still
checked on every request, against the cached hash. Only keys that exist are cached, at most
`max_keys` of them (least recently used dropped first), so made-up keys cannot fill the memory.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ingest.db import Catalog
from mapbuilder.serve.errors import BadKeyError
from mapbuilder.serve.keys import ApiKey, StoredKey, check_key, load_key, parse_key

MAX_KEYS = 10_000


class KeyCache:
    """Authenticates keys from a per-process cache of their rows, read again after `ttl_s`."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        ttl_s: float,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._clock = clock
        self._rows: OrderedDict[str, tuple[StoredKey, float]] = OrderedDict()
        self._used_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def authenticate(self, presented: str) -> ApiKey:
        """The live key `presented` names (reading the catalog when its row is not fresh here)."""
        key_id, secret = parse_key(presented)
        stored = self._fresh(key_id)
        if stored is None:
            read_at = self._clock()  # before the read: the row is known as of then, not later
            stored = load_key(self.catalog, key_id)
            if stored is not None:
                self._keep(key_id, stored, read_at)
        return check_key(stored, secret)

    def cached(self, presented: str) -> ApiKey | None:
        """The live key from the cache alone, without I/O; None when only `authenticate` can tell."""
        try:
            key_id, secret = parse_key(presented)
            stored = self._fresh(key_id)
            return None if stored is None else check_key(stored, secret)
        except BadKeyError:
            return None

    def refresh_due(self) -> int:
        """Read again the rows read half their TTL ago or more and used since; how many."""
        now = self._clock()
        with self._lock:
            due = [
                key_id
                for key_id, (_, read_at) in self._rows.items()
                if now - read_at >= self.ttl_s / 2 and self._used_at.get(key_id, -1.0) > read_at
            ]
        for key_id in due:
            stored = load_key(self.catalog, key_id)
            if stored is None:
                self._forget(key_id)
            else:
                self._keep(key_id, stored, now)
        return len(due)

    def _fresh(self, key_id: str) -> StoredKey | None:
        with self._lock:
            entry = self._rows.get(key_id)
            now = self._clock()
            if entry is None or now - entry[1] > self.ttl_s:
                return None
            self._rows.move_to_end(key_id)
            self._used_at[key_id] = now
            return entry[0]

    def _keep(self, key_id: str, stored: StoredKey, read_at: float) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            self._rows[key_id] = (stored, read_at)
            self._rows.move_to_end(key_id)
            while len(self._rows) > self.max_keys:
                self._forget_locked(next(iter(self._rows)))

    def _forget(self, key_id: str) -> None:
        with self._lock:
            self._forget_locked(key_id)

    def _forget_locked(self, key_id: str) -> None:
        self._rows.pop(key_id, None)
        self._used_at.pop(key_id, None)
