"""The device's HTTP client for the ingest API: signed requests, retries, uploads.

Transient failures (no network, timeouts, 5xx, 429) are retried with exponential backoff and full
jitter, honouring Retry-After; a refusal (4xx) is not retried, it is reported with the server's
message. Read timeouts grow with the upload's size, so a slow uplink is not mistaken for a dead one.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from edge.errors import EdgeError
from edge.identity import Identity
from ingest.protocol import (
    CommitReceipt,
    DeviceEarnings,
    Registration,
    SignedManifest,
    UploadItem,
    UploadRequest,
    UploadTicket,
    UploadTickets,
    public_key_hex,
    registration_proof,
    sign_request,
)

log = logging.getLogger(__name__)
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class ServerUnreachableError(EdgeError):
    """The API or the store could not be reached after every retry; try again later."""


class RequestRefusedError(EdgeError):
    """The server refused a request (4xx); retrying the same request would not help."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"the server refused the request ({status} {code}): {message}")
        self.status = status
        self.code = code


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts per request, backoff base and cap, timeouts."""

    attempts: int = 8
    base_s: float = 1.0
    cap_s: float = 60.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    # The slowest uplink still worth waiting for: a 2 MB frame gets 30 s + 2 MB / 32 KB/s.
    min_bytes_per_s: float = 32_000.0

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        """Full-jitter backoff, or the server's Retry-After when it gives one."""
        if retry_after_s is not None:
            return min(self.cap_s, max(0.0, retry_after_s))
        return random.uniform(0, min(self.cap_s, self.base_s * 2**attempt))

    def timeout(self, body_bytes: int) -> httpx.Timeout:
        """Timeouts for a request that sends `body_bytes`."""
        read = self.read_timeout_s + body_bytes / self.min_bytes_per_s
        return httpx.Timeout(read, connect=self.connect_timeout_s, write=read)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


class IngestClient:
    """Calls of one device to one ingest API."""

    def __init__(
        self,
        api_url: str,
        identity: Identity,
        *,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.identity = identity
        self.policy = policy or RetryPolicy()
        self._http = httpx.Client(transport=transport, follow_redirects=False)
        self._sleep = sleep

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def register(self, enrollment_token: str | None = None) -> str:
        """Register this device's key (harmless when it is registered already); its id."""
        body = Registration(
            public_key=public_key_hex(self.identity.public_key),
            proof=registration_proof(self.identity.private_key),
            enrollment_token=enrollment_token,
        )
        answer = self._call("POST", "/v1/devices", body.model_dump_json().encode(), signed=False)
        return str(answer.json()["device_id"])

    def tickets(self, items: list[UploadItem]) -> list[UploadTicket]:
        """Upload tickets for these frames."""
        body = UploadRequest(frames=items).model_dump_json().encode()
        answer = self._call("POST", "/v1/uploads", body)
        return UploadTickets.model_validate_json(answer.content).tickets

    def upload(self, ticket: UploadTicket, data: bytes) -> None:
        """Send one frame as the ticket says (a multipart POST, the file last)."""
        files = {"file": (f"{ticket.frame_id}.jpg", data, "image/jpeg")}

        def send() -> httpx.Response:
            return self._http.post(
                ticket.url, data=ticket.fields, files=files, timeout=self.policy.timeout(len(data))
            )

        self._with_retries(send, f"upload of {ticket.frame_id[:12]}")

    def commit(self, signed: SignedManifest) -> CommitReceipt:
        """Commit a batch; the receipt also comes for a batch the server already has."""
        answer = self._call("POST", "/v1/batches", signed.model_dump_json().encode())
        return CommitReceipt.model_validate_json(answer.content)

    def me(self) -> dict[str, Any]:
        """What the server knows of this device's frames."""
        found: dict[str, Any] = self._call("GET", "/v1/devices/me", b"").json()
        return found

    def earnings(self) -> DeviceEarnings:
        """This device's allocations per closed reward epoch, newest first."""
        answer = self._call("GET", "/v1/devices/me/earnings", b"")
        return DeviceEarnings.model_validate_json(answer.content)

    def _call(self, method: str, path: str, body: bytes, *, signed: bool = True) -> httpx.Response:
        def send() -> httpx.Response:
            headers = {"Content-Type": "application/json"}
            if signed:
                # Signed at each attempt: the server accepts only a recent time.
                key = self.identity.private_key
                headers |= sign_request(key, method, path, body, int(time.time()))
            return self._http.request(
                method,
                self.api_url + path,
                content=body or None,
                headers=headers,
                timeout=self.policy.timeout(len(body)),
            )

        return self._with_retries(send, f"{method} {path}")

    def _with_retries(self, send: Callable[[], httpx.Response], what: str) -> httpx.Response:
        problem = ""
        for attempt in range(self.policy.attempts):
            retry_after = None
            try:
                response = send()
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRY_STATUSES:
                    raise _refusal(response)
                problem = f"HTTP {response.status_code}"
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if attempt + 1 < self.policy.attempts:
                delay = self.policy.delay(attempt, retry_after)
                log.info("%s failed (%s); retrying in %.1f s", what, problem, delay)
                self._sleep(delay)
        msg = f"{what} failed {self.policy.attempts} times (last: {problem}): will retry on the next run"
        raise ServerUnreachableError(msg)


def _refusal(response: httpx.Response) -> RequestRefusedError:
    try:
        body = response.json()
        code, message = str(body.get("error", "")), str(body.get("message", body))
    except ValueError:
        # S3 answers in XML; keep it short.
        code, message = "", response.text[:300]
    return RequestRefusedError(response.status_code, code, message)
