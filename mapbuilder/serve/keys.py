"""Consumer API keys: created and shown once, stored only as a hash, revoked by an operator.

A key reads `rs_<key_id>_<secret>`. The public `key_id` finds the row; the secret is checked against
its sha256 in constant time. A secret of 256 random bits needs no slow hash: nobody can guess one,
and a stolen table of hashes gives no key that works.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from ingest.catalog import Base, utcnow
from ingest.db import Catalog
from mapbuilder.serve.errors import BadKeyError, KeyNotFoundError

KEY_PREFIX = "rs"
_KEY_FORMAT = re.compile(r"rs_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})")


class ApiKeyRow(Base):
    """One consumer key: its hash, its limits and its rate-limit bucket."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    rate_per_s: Mapped[float] = mapped_column(Float)
    burst: Mapped[int] = mapped_column(Integer)
    # Token bucket, kept on the key's row so every API process shares it (see ratelimit.py).
    tokens: Mapped[float] = mapped_column(Float)
    tokens_at_s: Mapped[float] = mapped_column(Float)


class ApiUsageRow(Base):
    """What one key used on one UTC day, in tiles, frames and map credits."""

    __tablename__ = "api_usage"

    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.key_id"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    tiles: Mapped[int] = mapped_column(BigInteger, default=0)
    frames: Mapped[int] = mapped_column(BigInteger, default=0)
    credits: Mapped[int] = mapped_column(BigInteger, default=0)


@dataclass(frozen=True)
class ApiKey:
    """A key as the API and the CLI see it (never its secret)."""

    key_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None
    rate_per_s: float
    burst: int


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _public(row: ApiKeyRow) -> ApiKey:
    return ApiKey(row.key_id, row.name, row.created_at, row.revoked_at, row.rate_per_s, row.burst)


def create_key(catalog: Catalog, name: str, *, rate_per_s: float, burst: int) -> tuple[ApiKey, str]:
    """Create a key; return it and its full text, which is shown once and never stored."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiKeyRow(
        key_id=key_id,
        secret_sha256=_hash(secret),
        name=name,
        created_at=utcnow(),
        revoked_at=None,
        rate_per_s=rate_per_s,
        burst=burst,
        tokens=float(burst),
        tokens_at_s=utcnow().timestamp(),
    )
    with catalog.session() as session:
        session.add(row)
    return _public(row), f"{KEY_PREFIX}_{key_id}_{secret}"


def list_keys(catalog: Catalog) -> list[ApiKey]:
    """Every key, oldest first, revoked ones included."""
    with catalog.session() as session:
        rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at)).all()
        return [_public(row) for row in rows]


def revoke_key(catalog: Catalog, key_id: str) -> ApiKey:
    """Revoke a key (idempotent); `KeyNotFoundError` when there is no such key."""
    with catalog.session() as session:
        row = session.get(ApiKeyRow, key_id)
        if row is None:
            msg = f"no API key {key_id!r}: see `roadswarm api keys list` for the key ids"
            raise KeyNotFoundError(msg)
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        return _public(row)


def authenticate(catalog: Catalog, presented: str) -> ApiKey:
    """The live key whose full text is `presented`, else `BadKeyError` saying what to do."""
    key_id, secret = parse_key(presented)
    return check_key(load_key(catalog, key_id), secret)


def parse_key(presented: str) -> tuple[str, str]:
    """The key id and secret of a key's full text; `BadKeyError` when it is not shaped like one."""
    match = _KEY_FORMAT.fullmatch(presented.strip())
    if match is None:
        msg = "the API key is malformed: keys look like rs_<12 hex>_<secret>, as `roadswarm api keys create` printed it"
        raise BadKeyError(msg)
    key_id, secret = match.groups()
    return key_id, secret


@dataclass(frozen=True)
class StoredKey:
    """A key and the hash its secret must match (what a process may cache)."""

    key: ApiKey
    secret_sha256: str


def load_key(catalog: Catalog, key_id: str) -> StoredKey | None:
    """The key with this id and its secret's hash, None when there is none."""
    with catalog.session() as session:
        row = session.get(ApiKeyRow, key_id)
        return None if row is None else StoredKey(_public(row), row.secret_sha256)


def check_key(stored: StoredKey | None, secret: str) -> ApiKey:
    """The key when `secret` is its secret and it is not revoked, else `BadKeyError`."""
    if stored is None or not hmac.compare_digest(stored.secret_sha256, _hash(secret)):
        msg = "the API key is not known: check it, or ask the operator for a new one"
        raise BadKeyError(msg)
    key = stored.key
    if key.revoked_at is not None:
        msg = f"the API key {key.key_id} was revoked on {key.revoked_at:%Y-%m-%d}: ask the operator for a new one"
        raise BadKeyError(msg)
    return key
