"""The ingest API fuzzed from its own OpenAPI schema, with every device route signed by a
registered device: no request, valid or not, gets a 5xx, and every refusal is JSON with a message.

Generated manifests are re-signed with the device's key (and named after it) whenever they are
valid, so positive cases go past the signature check into the commit itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from ingest.api.services import ApiServices
from ingest.db import Catalog
from ingest.protocol import BatchManifest, sign
from ingest.settings import IngestSettings
from ingest.storage import LocalObjectStore
from ingest.uploads import LocalUploadSigner
from roadswarm.api_server import ApiServer, free_port
from roadswarm.ingest_app import full_app
from tests.ingest_helpers import UPLOAD_SECRET, FakeDevice, catalog_at
from tests.reliability.properties import LONG

EXAMPLES = 1000 if LONG else 150
NOTIFY_TOKEN = "notify-token-for-fuzzing"
SIGNED_PATHS = ("/v1/uploads", "/v1/batches", "/v1/devices/me")


class Fuzzed:
    """The app, its schema, an HTTP client on it and the registered device that signs."""

    def __init__(self, catalog: Catalog, folder: Path, client: httpx.Client) -> None:
        settings = IngestSettings(upload_secret=UPLOAD_SECRET, notify_token=NOTIFY_TOKEN)
        signer = LocalUploadSigner(settings.upload_secret, str(client.base_url))
        services = ApiServices(catalog, LocalObjectStore(folder / "store"), signer, settings, None)
        self.app = full_app(services)
        self.schema = schemathesis.openapi.from_asgi("/openapi.json", self.app)
        self.client = client
        self.device = FakeDevice()

    def register(self) -> None:
        """Register the signing device."""
        assert self.client.post("/v1/devices", json=self.device.registration()).status_code == 201

    def send(self, case: schemathesis.Case[Any]) -> httpx.Response:
        """Send the case as a device would: the exact body bytes, signed where the route needs it."""
        body = _encoded(self._resigned(case))
        path = case.formatted_path
        query = urlencode(case.query or {}, doseq=True)
        target = path + (f"?{query}" if query else "")
        headers = {"content-type": "application/json", **dict(case.headers or {})}
        if path.startswith(SIGNED_PATHS):
            headers.update(self.device.headers(case.method, target, body))
        if path == "/v1/notifications/minio" and "authorization" not in headers:
            headers["authorization"] = f"Bearer {NOTIFY_TOKEN}"
        return self.client.request(case.method, target, content=body, headers=headers)

    def _resigned(self, case: schemathesis.Case[Any]) -> Any:
        """A valid generated manifest named after and signed by the device; anything else as is."""
        body = case.body
        if case.formatted_path != "/v1/batches" or not isinstance(body, dict):
            return body
        manifest = body.get("manifest")
        if not isinstance(manifest, dict):
            return body
        try:
            named = BatchManifest.model_validate({**manifest, "device_id": self.device.device_id})
        except ValidationError:
            return body
        return json.loads(sign(named, self.device.key).model_dump_json())


def _encoded(body: object) -> bytes:
    """The bytes sent for a generated body (none, raw bytes, or JSON)."""
    if type(body).__name__ == "NotSet":
        return b""
    return body if isinstance(body, bytes) else json.dumps(body).encode()


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzzed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fuzzed]:
    """The full device API over a catalog on each database, with a registered device."""
    port = free_port()
    with (
        catalog_at(request.param, tmp_path) as catalog,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        fuzzed = Fuzzed(catalog, tmp_path, client)
        with ApiServer(fuzzed.app, port=port):
            fuzzed.register()
            yield fuzzed


def test_no_request_gets_a_server_error(fuzzed: Fuzzed) -> None:
    """Every generated request (valid and invalid) to every operation gets a non-5xx answer, and
    every refusal is JSON saying what was wrong."""
    results = list(fuzzed.schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "every operation's schema must load"
    assert len(operations) >= 9
    modes = st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    cases = st.tuples(st.sampled_from(operations), modes).flatmap(
        lambda pair: pair[0].as_strategy(generation_mode=pair[1])
    )
    started = time.monotonic()

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case: schemathesis.Case[Any]) -> None:
        try:
            response = fuzzed.send(case)
        except (httpx.InvalidURL, httpx.LocalProtocolError):
            assume(False)  # not sendable over HTTP at all (control characters in a header)
            raise
        where = f"{case.method} {case.formatted_path} {str(case.body)[:300]!r}"
        if case.formatted_path == "/readyz":  # 503 by design here: this app has no broker
            assert response.json()["checks"]["broker"] == "not configured", where
            return
        assert response.status_code < 500, f"{where}: {response.text[:300]}"
        if response.status_code >= 400:
            assert response.json().get("message"), f"{where}: {response.text[:300]}"

    check()
    assert time.monotonic() - started < 300
