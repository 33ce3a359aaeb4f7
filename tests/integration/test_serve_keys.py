"""API keys, per-key rate limits and usage metering, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import patch

import pytest
from sqlalchemy.exc import SQLAlchemyError

from ingest.db import Catalog, create_catalog_engine
from ingest.storage import LocalObjectStore
from mapbuilder.serve.errors import BadKeyError, RateLimitedError
from mapbuilder.serve.key_cache import KeyCache
from mapbuilder.serve.keys import (
    ApiKey,
    authenticate,
    create_key,
    list_keys,
    parse_key,
    revoke_key,
)
from mapbuilder.serve.leases import TokenLeases, block_size
from mapbuilder.serve.metering import UsageMeter
from mapbuilder.serve.ratelimit import take_token
from mapbuilder.serve.usage import record_usage, usage_of
from tests.serve_helpers import MapApi, served_map_api

NOW_S = 2_000_000_000.0  # a stopped clock: buckets do not refill


@pytest.fixture
def map_api(catalog: Catalog, tmp_path: Path) -> Iterator[MapApi]:
    """The API over an empty store, on SQLite and PostgreSQL."""
    with served_map_api(catalog, LocalObjectStore(tmp_path / "store")) as api:
        yield api


def test_key_is_stored_only_as_a_hash(catalog: Catalog) -> None:
    """The full key authenticates; the catalog holds its sha256, never the secret."""
    key, text = create_key(catalog, "acme", rate_per_s=5, burst=10)
    assert authenticate(catalog, text) == key
    _, secret = parse_key(text)  # the secret is urlsafe base64: it may hold "_" itself
    assert len(secret) >= 40
    with catalog.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT * FROM api_keys").all()
    assert secret not in repr(rows)
    with pytest.raises(BadKeyError, match="not known"):
        authenticate(catalog, text[:-1] + ("A" if text[-1] != "A" else "B"))


def test_token_bucket_spends_and_refills(catalog: Catalog) -> None:
    """A burst of 3 allows 3 requests at once, then 429 with a wait; time refills it."""
    key, _ = create_key(catalog, "slow", rate_per_s=0.5, burst=3)
    now = 2_000_000_000.0
    for _ in range(3):
        take_token(catalog, key.key_id, now_s=now)
    with pytest.raises(RateLimitedError) as refused:
        take_token(catalog, key.key_id, now_s=now)
    assert refused.value.retry_after_s == 2
    take_token(catalog, key.key_id, now_s=now + 2.0)  # one token back after 2 s at 0.5/s
    with pytest.raises(RateLimitedError):
        take_token(catalog, key.key_id, now_s=now + 2.0)


def test_rate_limit_answers_429_with_retry_after(map_api: MapApi) -> None:
    """Past its burst a key gets 429, Retry-After and a message; other keys are not affected."""
    slow = map_api.new_key("slow", rate_per_s=0.01, burst=2)
    codes = [
        map_api.http.get("/v1/account/usage", headers=map_api.keyed(slow)).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    refused = map_api.http.get("/v1/account/usage", headers=map_api.keyed(slow))
    assert int(refused.headers["retry-after"]) >= 1
    assert "requests per second" in refused.json()["message"]
    assert map_api.http.get("/v1/account/usage", headers=map_api.keyed()).status_code == 200


def test_a_key_sees_only_its_own_usage(map_api: MapApi) -> None:
    """Usage is always the calling key's: another key's counts never show."""
    other = map_api.new_key("other")
    other_id = authenticate(map_api.services.catalog, other).key_id
    record_usage(map_api.services.catalog, other_id, tiles=50, credits=50)
    mine = map_api.http.get("/v1/account/usage", headers=map_api.keyed()).json()
    assert mine["days"] == [] and mine["total_credits"] == 0
    theirs = map_api.http.get(
        "/v1/account/usage", params={"key_id": other_id}, headers=map_api.keyed()
    ).json()
    assert theirs["key_id"] != other_id and theirs["total_credits"] == 0


def test_revoked_and_malformed_keys_are_refused(map_api: MapApi) -> None:
    """A revoked key and a malformed one get 401 with what to do."""
    key_id = authenticate(map_api.services.catalog, map_api.key).key_id
    revoke_key(map_api.services.catalog, key_id)
    revoked = map_api.http.get("/v1/account/usage", headers=map_api.keyed())
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["message"]
    malformed = map_api.http.get("/v1/account/usage", headers={"X-API-Key": "hello"})
    assert malformed.status_code == 401
    assert "malformed" in malformed.json()["message"]
    assert [k.revoked_at is not None for k in list_keys(map_api.services.catalog)] == [True]


@contextmanager
def other_process(catalog: Catalog) -> Iterator[Catalog]:
    """A second connection pool on the same database, as another API process has."""
    other = Catalog(create_catalog_engine(catalog.engine.url.render_as_string(hide_password=False)))
    try:
        yield other
    finally:
        other.dispose()


def _spend_until_refused(leases: TokenLeases, key: ApiKey) -> int:
    spent = 0
    while True:
        try:
            leases.spend(key)
        except RateLimitedError:
            return spent
        spent += 1


def test_leased_tokens_are_spent_once_across_processes_and_threads(catalog: Catalog) -> None:
    """Two processes' leases, four threads each, with the clock stopped (no refill): together
    they admit exactly the burst, in blocks of several tokens, and hold none back."""
    key, _ = create_key(catalog, "shared", rate_per_s=500, burst=400)
    assert block_size(key) == 50
    with other_process(catalog) as other:
        processes = [
            TokenLeases(catalog, clock=lambda: NOW_S),
            TokenLeases(other, clock=lambda: NOW_S),
        ]
        with ThreadPoolExecutor(8) as pool:
            spent = list(pool.map(lambda i: _spend_until_refused(processes[i % 2], key), range(8)))
        assert sum(spent) == 400
        assert [leases.give_back() for leases in processes] == [0, 0]


def test_unspent_tokens_go_back_at_shutdown(catalog: Catalog) -> None:
    """A process that leased a block and stops returns what it did not spend, for the others."""
    key, _ = create_key(catalog, "shared", rate_per_s=500, burst=400)
    with other_process(catalog) as other:
        first, second = (TokenLeases(c, clock=lambda: NOW_S) for c in (catalog, other))
        first.spend(key)
        assert _spend_until_refused(second, key) == 400 - block_size(key)
        assert first.give_back() == block_size(key) - 1
        # A process that has not been refused yet (the second one waits for the refill).
        third = TokenLeases(other, clock=lambda: NOW_S)
        assert _spend_until_refused(third, key) == block_size(key) - 1


def test_an_empty_bucket_is_refused_from_memory_until_it_refills(catalog: Catalog) -> None:
    """After a refusal a process answers 429 without the catalog until a token has come back."""
    key, _ = create_key(catalog, "slow", rate_per_s=0.5, burst=1)
    clock = [NOW_S]
    leases = TokenLeases(catalog, clock=lambda: clock[0])
    leases.spend(key)
    with pytest.raises(RateLimitedError):
        leases.spend(key)
    with patch.object(catalog.engine, "connect", side_effect=AssertionError("catalog used")):
        clock[0] += 1.0
        with pytest.raises(RateLimitedError) as refused:
            leases.spend(key)
    assert refused.value.retry_after_s == 1
    clock[0] += 1.0  # 2 s at 0.5/s: one token
    leases.spend(key)


def test_usage_is_neither_lost_nor_counted_twice(catalog: Catalog) -> None:
    """Two processes' meters count from four threads each while both flush over and over: the
    catalog ends with exactly what was served."""
    key, _ = create_key(catalog, "busy", rate_per_s=1, burst=1)
    with other_process(catalog) as other:
        meters = [UsageMeter(catalog), UsageMeter(other)]
        done = threading.Event()

        def serve(index: int) -> None:
            for _ in range(500):
                meters[index % 2].add(key.key_id, tiles=1, credits=2)
                meters[index % 2].add(key.key_id, frames=3, credits=30)

        def flush_repeatedly() -> None:
            while not done.is_set():
                for meter in meters:
                    meter.flush()

        flusher = threading.Thread(target=flush_repeatedly)
        flusher.start()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(serve, range(8)))
        done.set()
        flusher.join()
        for meter in meters:
            meter.flush()
    [day] = usage_of(catalog, key.key_id)
    assert (day.tiles, day.frames, day.credits) == (4000, 12000, 4000 * 32)


def test_a_failed_flush_keeps_the_counts(catalog: Catalog) -> None:
    """When the catalog refuses the write, the counts stay pending and the next flush writes
    them once."""
    key, _ = create_key(catalog, "patient", rate_per_s=1, burst=1)
    meter = UsageMeter(catalog)
    meter.add(key.key_id, tiles=5, credits=5)
    with catalog.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE api_usage RENAME TO api_usage_away")
    with pytest.raises(SQLAlchemyError):
        meter.flush()
    meter.add(key.key_id, tiles=1, credits=1)
    with catalog.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE api_usage_away RENAME TO api_usage")
    assert meter.flush() == 1
    assert meter.flush() == 0
    [day] = usage_of(catalog, key.key_id)
    assert (day.tiles, day.credits) == (6, 6)


def test_usage_is_counted_on_the_utc_day_it_was_served(catalog: Catalog) -> None:
    """Use either side of midnight UTC lands on two days."""
    key, _ = create_key(catalog, "night", rate_per_s=1, burst=1)
    midnight = datetime(2026, 11, 3, tzinfo=UTC).timestamp()
    clock = [midnight - 0.5]
    meter = UsageMeter(catalog, clock=lambda: clock[0])
    meter.add(key.key_id, tiles=2, credits=2)
    clock[0] = midnight + 0.5
    meter.add(key.key_id, tiles=3, credits=3)
    meter.flush()
    assert [(d.day, d.tiles) for d in usage_of(catalog, key.key_id)] == [
        ("2026-11-03", 3),
        ("2026-11-02", 2),
    ]


def test_cached_key_is_refused_once_revoked_and_its_ttl_passed(catalog: Catalog) -> None:
    """A process trusts a key's row for its TTL, then reads it again and sees the revocation;
    a wrong secret is refused even while the row is cached."""
    key, text = create_key(catalog, "leaving", rate_per_s=1, burst=1)
    clock = [100.0]
    keys = KeyCache(catalog, ttl_s=5.0, clock=lambda: clock[0])
    assert keys.cached(text) is None  # nothing read yet: only authenticate may tell
    assert keys.authenticate(text) == key
    revoke_key(catalog, key.key_id)
    clock[0] += 4.0
    assert keys.cached(text) == key
    assert keys.cached(text[:-1] + ("A" if text[-1] != "A" else "B")) is None
    clock[0] += 2.0
    assert keys.cached(text) is None
    with pytest.raises(BadKeyError, match="revoked"):
        keys.authenticate(text)


def test_revoked_key_stops_within_the_cache_ttl(catalog: Catalog, tmp_path: Path) -> None:
    """Through the API: a key in use is refused with 401 once the key cache's TTL has passed."""
    ttl_s = 0.5
    with served_map_api(catalog, LocalObjectStore(tmp_path / "store"), key_cache_s=ttl_s) as api:
        assert api.http.get("/v1/account/usage", headers=api.keyed()).status_code == 200
        revoke_key(api.services.catalog, authenticate(catalog, api.key).key_id)
        time.sleep(ttl_s + 0.1)
        refused = api.http.get("/v1/account/usage", headers=api.keyed())
        assert refused.status_code == 401
        assert "revoked" in refused.json()["message"]


def test_keys_in_use_are_read_again_before_they_expire(catalog: Catalog) -> None:
    """The background re-read keeps a busy key cached past its TTL, sees a revocation, and
    leaves keys nobody used since alone."""
    key, text = create_key(catalog, "busy", rate_per_s=1, burst=1)
    _, idle = create_key(catalog, "idle", rate_per_s=1, burst=1)
    clock = [100.0]
    keys = KeyCache(catalog, ttl_s=4.0, clock=lambda: clock[0])
    keys.authenticate(text)
    keys.authenticate(idle)
    clock[0] = 101.0
    assert keys.cached(text) == key
    clock[0] = 102.5
    assert keys.refresh_due() == 1  # the busy key only
    clock[0] = 105.0  # past the first read's TTL, within the re-read's
    assert keys.cached(text) == key
    assert keys.cached(idle) is None
    revoke_key(catalog, key.key_id)
    assert keys.refresh_due() == 1
    assert keys.cached(text) is None
    with pytest.raises(BadKeyError, match="revoked"):
        keys.authenticate(text)
