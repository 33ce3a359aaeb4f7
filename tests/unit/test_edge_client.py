"""The device's HTTP client: transient failures are retried with backoff (honouring Retry-After),
refusals are not, and read timeouts grow with the upload."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.client import (
    IngestClient,
    RequestRefusedError,
    RetryPolicy,
    ServerUnreachableError,
    retry_after_seconds,
)
from edge.identity import Identity
from ingest.protocol import UploadTicket, verify_request

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler, sleeps: list[float], attempts: int = 4) -> IngestClient:
    return IngestClient(
        "http://ingest.test",
        Identity(Ed25519PrivateKey.generate()),
        policy=RetryPolicy(attempts=attempts, base_s=1.0, cap_s=8.0),
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
    )


def _ticket() -> UploadTicket:
    return UploadTicket(
        frame_id="a" * 64,
        key="frames/x/y.jpg",
        url="http://store.test/bucket",
        fields={"key": "frames/x/y.jpg"},
        expires_at=datetime.now(UTC),
    )


def test_transient_failures_are_retried_until_success() -> None:
    """A reset connection and two 503s, then success: four attempts, three backoffs."""
    calls: list[int] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("connection reset", request=request)
        if len(calls) <= 3:
            return httpx.Response(503)
        return httpx.Response(201)

    sleeps: list[float] = []
    _client(flaky, sleeps).upload(_ticket(), b"jpeg bytes")
    assert len(calls) == 4
    assert len(sleeps) == 3
    assert all(0 <= s <= min(8.0, 2**i) for i, s in enumerate(sleeps))


def test_retry_after_is_honoured() -> None:
    """A 429 with Retry-After: 7 waits exactly 7 s before the next attempt."""
    answers = iter([httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(201)])
    sleeps: list[float] = []
    _client(lambda request: next(answers), sleeps).upload(_ticket(), b"x")
    assert sleeps == [7.0]


def test_refusals_are_not_retried_and_carry_the_message() -> None:
    """A 409 is reported at once with the server's error code and message."""
    calls: list[int] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(409, json={"error": "ReplayError", "message": "counter 3 reused"})

    with pytest.raises(RequestRefusedError, match="counter 3 reused") as caught:
        _client(refuse, []).me()
    assert caught.value.code == "ReplayError" and caught.value.status == 409
    assert len(calls) == 1


def test_giving_up_says_it_will_retry_later() -> None:
    """After every attempt failed, the error names the request and the last problem."""

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    sleeps: list[float] = []
    with pytest.raises(ServerUnreachableError, match="GET /v1/devices/me failed 4 times"):
        _client(down, sleeps).me()
    assert len(sleeps) == 3


def test_requests_are_signed_at_each_attempt() -> None:
    """Every attempt carries a valid signature of the device over method, path and body."""
    seen: list[httpx.Request] = []

    def check(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"device_id": "d"})

    client = _client(check, [])
    client.me()
    (request,) = seen
    verify_request(client.identity.public_key, "GET", "/v1/devices/me", b"", dict(request.headers))


def test_timeouts_grow_with_the_body() -> None:
    """A 3.2 MB upload gets 100 s more to read than an empty request."""
    policy = RetryPolicy(read_timeout_s=30, min_bytes_per_s=32_000)
    assert policy.timeout(0).read == 30
    assert policy.timeout(3_200_000).read == 130


def test_retry_after_accepts_seconds_and_dates() -> None:
    """Both forms of Retry-After are understood; garbage is ignored."""
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is not None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
