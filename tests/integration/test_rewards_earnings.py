"""Drivers' earnings on the device: the signed `GET /v1/devices/me/earnings` of the real API on
loopback, the copy the upload keeps in the spool, and `edge status` online, stale and offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.client import IngestClient, RequestRefusedError, RetryPolicy
from edge.earnings import refresh_earnings, tokens
from edge.identity import Identity
from edge.livespool import LiveSpool
from edge.status import device_status, status_text
from edge.upload import upload_spool
from ingest.api.services import ApiServices
from ingest.db import Catalog
from ingest.protocol import DeviceEarnings
from ingest.settings import IngestSettings
from ingest.storage import LocalObjectStore
from ingest.uploads import LocalUploadSigner
from rewards.close import close_epoch
from rewards.merkle import ProofStep, root_from_proof
from rewards.record import ALLOCATION_TAG, allocation_leaf
from rewards.settings import RewardParams
from roadswarm.api_server import ApiServer, free_port
from roadswarm.ingest_app import full_app
from tests.rewards_helpers import CLOSE_AT, EPOCH, seed_catalog, week

OPERATOR = Ed25519PrivateKey.from_private_bytes(b"\x09" * 32)
SECRET = "earnings-test-secret-0123456789abcdef"


def identity(number: int) -> Identity:
    """The edge identity of the rewards helpers' fixed device `number`."""
    return Identity(Ed25519PrivateKey.from_private_bytes(bytes([number]) * 32))


def fetched(url: str, number: int) -> DeviceEarnings:
    """Device `number`'s earnings, through a client closed afterwards."""
    with closing(IngestClient(url, identity(number))) as client:
        return client.earnings()


@pytest.fixture
def closed_api(sqlite_catalog: Catalog, tmp_path: Path) -> Iterator[str]:
    """The whole device API over a catalog with one closed epoch; its URL."""
    seed_catalog(sqlite_catalog, week())
    close_epoch(
        sqlite_catalog, EPOCH, RewardParams(), key=OPERATOR, code_version="test", now=CLOSE_AT
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    services = ApiServices(
        sqlite_catalog,
        LocalObjectStore(tmp_path / "store"),
        LocalUploadSigner(SECRET, url),
        IngestSettings(upload_secret=SECRET),
        None,
    )
    with ApiServer(full_app(services), port=port):
        yield url


def test_a_device_fetches_its_allocations_and_proofs(closed_api: str) -> None:
    """The answer carries the ledger's amounts as integer strings, both payees summing to the
    gross, and an inclusion proof that leads to the signed allocation root."""
    answer = fetched(closed_api, 1)
    assert answer.device_id == identity(1).device_id and answer.decimals == 9
    assert answer.epochs_closed == 1 and answer.last_closed_epoch == EPOCH.key
    line = answer.epochs[0]
    assert int(line.gross) > 0 and line.gross == line.cumulative == answer.total_gross
    assert int(line.driver) + int(line.fleet_manager) == int(line.gross)
    assert sum(int(a.amount) for a in line.allocations) == int(line.gross)
    leaf = allocation_leaf(
        EPOCH.key,
        {"device_id": answer.device_id, "gross": line.gross, "cumulative": line.cumulative},
    )
    steps = [ProofStep(s["side"], s["sibling"]) for s in line.proof]
    assert root_from_proof(ALLOCATION_TAG, leaf, steps).hex() == line.allocation_root
    device3 = fetched(closed_api, 3)  # quarantined frames only
    assert device3.epochs == [] and device3.total_driver == "0"


def test_unsigned_and_unknown_devices_are_refused(closed_api: str) -> None:
    """Earnings need a request signed by a registered device."""
    assert httpx.get(f"{closed_api}/v1/devices/me/earnings").status_code == 401
    stranger = IngestClient(closed_api, identity(42), policy=RetryPolicy(attempts=1))
    with closing(stranger), pytest.raises(RequestRefusedError) as refused:
        stranger.earnings()
    assert refused.value.status in (401, 403)


def test_status_shows_earnings_fresh_stale_and_offline(closed_api: str, tmp_path: Path) -> None:
    """Never fetched, then fetched by an upload run, then shown stale a day later; an offline
    refresh keeps the last copy and status still answers."""
    folder = tmp_path / "spool"
    now = datetime.now(UTC)
    with LiveSpool(folder) as spool:
        assert "earnings: never fetched" in status_text(device_status(spool, now=now))
        with closing(IngestClient(closed_api, identity(2))) as client:
            upload_spool(spool, client)
        status = device_status(spool, now=now)
        earnings = status["earnings"]
        assert isinstance(earnings, dict) and not earnings["stale"]
        expected = fetched(closed_api, 2)
        assert earnings["total_driver"] == expected.total_driver
        assert earnings["last_epoch"]["epoch"] == EPOCH.key
        text = status_text(status)
        assert f"{tokens(expected.epochs[0].driver)} tokens in epoch {EPOCH.key}" in text
        later = device_status(spool, now=now + timedelta(days=2))
        assert "STALE" in status_text(later)
        offline = IngestClient(
            f"http://127.0.0.1:{free_port()}", identity(2), policy=RetryPolicy(attempts=1)
        )
        with closing(offline):
            assert not refresh_earnings(spool, offline)
        assert device_status(spool, now=now)["earnings"] == earnings


def test_edge_status_command_reports_earnings_as_json(closed_api: str, tmp_path: Path) -> None:
    """`roadswarm edge status --json` prints the cached earnings, amounts as strings."""
    folder = tmp_path / "spool"
    with LiveSpool(folder) as spool, closing(IngestClient(closed_api, identity(1))) as client:
        assert refresh_earnings(spool, client)
    done = subprocess.run(
        [sys.executable, "-m", "roadswarm", "edge", "status", "--spool", str(folder), "--json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ROADSWARM_EDGE_SPOOL_DIR": str(folder)},
    )
    earnings = json.loads(done.stdout)["earnings"]
    assert isinstance(earnings["total_driver"], str) and int(earnings["total_driver"]) > 0
    assert earnings["stale"] is False
