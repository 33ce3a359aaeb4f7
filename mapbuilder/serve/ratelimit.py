"""Per-key rate limits: a token bucket kept on the key's row in the catalog.

The bucket lives in the catalog, not in process memory, so every API worker process (and host)
shares it, and it needs no service beyond the database the API already uses. One conditional UPDATE
refills and takes in a single statement, which both SQLite and PostgreSQL run atomically: two
processes can never take the same token. Processes take tokens in blocks (see leases.py), so that
statement runs once per block, not once per request.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import cast

from sqlalchemy import ColumnElement, Connection, Table, case, select, update

from ingest.db import Catalog
from mapbuilder.serve.errors import RateLimitedError
from mapbuilder.serve.keys import ApiKeyRow

# The Core table, not the ORM class: a plain UPDATE needs no ORM bookkeeping, and SQLAlchemy
# caches its compiled form (the ORM's annotated UPDATE warned that it could not be cached).
TABLE = cast(Table, ApiKeyRow.__table__)
KEYS = TABLE.c


@dataclass(frozen=True)
class Refusal:
    """An empty bucket: the wait until it holds a whole token again, and the key's rate."""

    wait_s: float
    rate_per_s: float

    def error(self, wait_s: float | None = None) -> RateLimitedError:
        """The 429 to answer, with Retry-After in whole seconds (at least 1)."""
        retry_after_s = max(1, math.ceil(self.wait_s if wait_s is None else wait_s))
        msg = (
            f"this key may make {self.rate_per_s:g} requests per second (bursts allowed): "
            f"wait {retry_after_s} s (Retry-After) or ask the operator for a higher limit"
        )
        return RateLimitedError(msg, retry_after_s)


def _level(now_s: float, added: float = 0.0) -> ColumnElement[float]:
    """Tokens in the bucket at `now_s` (plus `added`): what was there and the refill, capped at the burst."""
    elapsed = case((KEYS.tokens_at_s < now_s, now_s - KEYS.tokens_at_s), else_=0.0)
    refill = KEYS.tokens + elapsed * KEYS.rate_per_s + added
    return case((refill > KEYS.burst, KEYS.burst), else_=refill)


def _stamp(now_s: float) -> ColumnElement[float]:
    """The bucket's new time: `now_s`, unless a process with a later clock wrote already."""
    return case((KEYS.tokens_at_s < now_s, now_s), else_=KEYS.tokens_at_s)


def _take(connection: Connection, key_id: str, count: int, now_s: float) -> bool:
    """Take `count` tokens if the bucket holds them; whether it did."""
    level = _level(now_s)
    spend = (
        update(TABLE)
        .where(KEYS.key_id == key_id, level >= count)
        .values(tokens=level - count, tokens_at_s=_stamp(now_s))
    )
    return connection.execute(spend).rowcount == 1


def lease_tokens(catalog: Catalog, key_id: str, *, want: int, now_s: float) -> int | Refusal:
    """Take up to `want` whole tokens from the key's bucket: how many, or a `Refusal` when not one is left."""
    with catalog.engine.begin() as connection:
        if _take(connection, key_id, want, now_s):
            return want
        # Fewer than `want` are left: take what there is. The row stays locked until the second
        # UPDATE (FOR UPDATE on PostgreSQL; on SQLite the first UPDATE began a write transaction),
        # so `left` cannot shrink in between.
        left, rate = connection.execute(
            select(_level(now_s), KEYS.rate_per_s).where(KEYS.key_id == key_id).with_for_update()
        ).one()
        whole = min(want, math.floor(float(left)))
        if whole >= 1 and _take(connection, key_id, whole, now_s):
            return whole
    return Refusal((1.0 - float(left)) / float(rate), float(rate))


def return_tokens(catalog: Catalog, key_id: str, count: int, *, now_s: float) -> None:
    """Put tokens taken but never spent back into the bucket (capped at the burst)."""
    level = _level(now_s, float(count))
    give = (
        update(TABLE).where(KEYS.key_id == key_id).values(tokens=level, tokens_at_s=_stamp(now_s))
    )
    with catalog.engine.begin() as connection:
        connection.execute(give)


def take_token(catalog: Catalog, key_id: str, *, now_s: float | None = None) -> None:
    """Spend one request from the key's bucket, or raise `RateLimitedError` with a Retry-After."""
    taken = lease_tokens(catalog, key_id, want=1, now_s=time.time() if now_s is None else now_s)
    if isinstance(taken, Refusal):
        raise taken.error()
