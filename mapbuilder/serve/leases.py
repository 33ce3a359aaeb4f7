"""Rate-limit tokens taken from a key's catalog bucket in blocks and spent in this process.

Writing the bucket on every request made keyed requests cost one catalog write each. Instead a
process leases a block of whole tokens with one UPDATE and spends them from memory; when they are
gone it leases the next block. The bucket stays the one shared truth: a token is taken from it
once, by one process, and spent once.

The slack, and why it is small: a block is at most `LEASE_S` seconds of the key's rate and at most
`BURST_SHARE` of its burst (and at least one token, so a slow key leases one token at a time and is
limited exactly). Tokens are charged to the bucket when leased, not when spent, so with P processes
a key may be admitted up to P blocks more than its burst plus its rate over any interval, and
another process may answer 429 while up to P blocks sit unspent elsewhere. Unspent tokens go back
to the bucket when the process shuts down. After a refusal the process answers 429 from memory
until the bucket has refilled one token, so a client hammering a limited key costs no writes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ingest.db import Catalog
from mapbuilder.serve.keys import ApiKey
from mapbuilder.serve.ratelimit import Refusal, lease_tokens, return_tokens

LEASE_S = 0.2
BURST_SHARE = 0.125


def block_size(key: ApiKey) -> int:
    """Tokens one lease takes: a fraction of a second of the key's rate and of its burst, at least 1."""
    return max(1, math.floor(min(key.rate_per_s * LEASE_S, key.burst * BURST_SHARE)))


@dataclass
class _Lease:
    """One key's tokens held by this process, and until when its bucket is known to be empty."""

    tokens: int = 0
    empty_until_s: float = 0.0
    refusal: Refusal | None = None
    # Held while leasing from the catalog, so concurrent requests wait for one block, not take one each.
    leasing: threading.Lock = field(default_factory=threading.Lock)


class TokenLeases:
    """Spends rate-limit tokens from blocks leased from each key's bucket in the catalog."""

    def __init__(self, catalog: Catalog, *, clock: Callable[[], float] = time.time) -> None:
        self.catalog = catalog
        self._clock = clock
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()

    def spend_local(self, key: ApiKey) -> bool:
        """Spend one token this process holds for the key (no I/O); False when it holds none."""
        with self._lock:
            lease = self._leases.get(key.key_id)
            if lease is None or lease.tokens < 1:
                return False
            lease.tokens -= 1
            return True

    def spend(self, key: ApiKey) -> None:
        """Spend one token, leasing a block when none is held; `RateLimitedError` when the bucket is empty."""
        if self.spend_local(key):
            return
        lease = self._lease_of(key.key_id)
        with lease.leasing:
            if self.spend_local(key):  # another thread leased a block while this one waited
                return
            now = self._clock()
            if lease.refusal is not None and now < lease.empty_until_s:
                raise lease.refusal.error(lease.empty_until_s - now)
            taken = lease_tokens(self.catalog, key.key_id, want=block_size(key), now_s=now)
            if isinstance(taken, Refusal):
                lease.refusal, lease.empty_until_s = taken, now + taken.wait_s
                raise taken.error()
            with self._lock:
                lease.tokens += taken - 1

    def give_back(self) -> int:
        """Return every unspent token to its bucket (at shutdown); how many were returned."""
        with self._lock:
            held = {key_id: lease.tokens for key_id, lease in self._leases.items() if lease.tokens}
            for lease in self._leases.values():
                lease.tokens = 0
        now = self._clock()
        for key_id, count in held.items():
            return_tokens(self.catalog, key_id, count, now_s=now)
        return sum(held.values())

    def _lease_of(self, key_id: str) -> _Lease:
        with self._lock:
            return self._leases.setdefault(key_id, _Lease())
