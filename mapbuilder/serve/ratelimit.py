"""Per-key rate limits: a token bucket kept on the key's row in the catalog.

The bucket lives in the catalog, not in process memory, so every API worker process (and host)
shares it, and it needs no service beyond the database the API already uses. One conditional UPDATE
refills and spends in a single statement, which both SQLite and PostgreSQL run atomically: two
processes can never spend the same token.
"""

from __future__ import annotations

import math
import time
from typing import cast

from sqlalchemy import ColumnElement, Table, case, select, update

from ingest.db import Catalog
from mapbuilder.serve.errors import RateLimitedError
from mapbuilder.serve.keys import ApiKeyRow

# The Core table, not the ORM class: a plain UPDATE needs no ORM bookkeeping, and SQLAlchemy
# caches its compiled form (the ORM's annotated UPDATE warned that it could not be cached).
TABLE = cast(Table, ApiKeyRow.__table__)
KEYS = TABLE.c


def _refilled(now_s: float) -> ColumnElement[float]:
    """Tokens in the bucket at `now_s`: what was there plus the refill, capped at the burst."""
    elapsed = case((KEYS.tokens_at_s < now_s, now_s - KEYS.tokens_at_s), else_=0.0)
    refill = KEYS.tokens + elapsed * KEYS.rate_per_s
    return case((refill > KEYS.burst, KEYS.burst), else_=refill)


def take_token(catalog: Catalog, key_id: str, *, now_s: float | None = None) -> None:
    """Spend one request from the key's bucket, or raise `RateLimitedError` with a Retry-After."""
    now = time.time() if now_s is None else now_s
    level = _refilled(now)
    spend = (
        update(TABLE)
        .where(KEYS.key_id == key_id, level >= 1.0)
        .values(
            tokens=level - 1.0,
            tokens_at_s=case((KEYS.tokens_at_s < now, now), else_=KEYS.tokens_at_s),
        )
    )
    with catalog.engine.begin() as connection:
        if connection.execute(spend).rowcount == 1:
            return
        left, rate = connection.execute(
            select(level, KEYS.rate_per_s).where(KEYS.key_id == key_id)
        ).one()
    wait_s = max(1, math.ceil((1.0 - float(left)) / float(rate)))
    msg = (
        f"this key may make {rate:g} requests per second (bursts allowed): "
        f"wait {wait_s} s (Retry-After) or ask the operator for a higher limit"
    )
    raise RateLimitedError(msg, wait_s)
