"""API keys, per-key rate limits and usage metering, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from mapbuilder.serve.errors import BadKeyError, RateLimitedError
from mapbuilder.serve.keys import authenticate, create_key, list_keys, revoke_key
from mapbuilder.serve.ratelimit import take_token
from mapbuilder.serve.usage import record_usage
from tests.serve_helpers import MapApi, served_map_api


@pytest.fixture
def map_api(catalog: Catalog, tmp_path: Path) -> Iterator[MapApi]:
    """The API over an empty store, on SQLite and PostgreSQL."""
    with served_map_api(catalog, LocalObjectStore(tmp_path / "store")) as api:
        yield api


def test_key_is_stored_only_as_a_hash(catalog: Catalog) -> None:
    """The full key authenticates; the catalog holds its sha256, never the secret."""
    key, text = create_key(catalog, "acme", rate_per_s=5, burst=10)
    assert authenticate(catalog, text) == key
    secret = text.rsplit("_", 1)[1]
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
