"""The real `roadswarm api keys` and `roadswarm serve --workers 2` commands on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from roadswarm.api_server import free_port
from tests.ingest_helpers import postgres_database
from tests.integration.test_cli_errors import COMMAND_TIMEOUT_S, REPO_ROOT

START_TIMEOUT_S = 60.0


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment naming a fresh, migrated PostgreSQL catalog and a store folder."""
    with postgres_database() as url:
        chosen = {
            **os.environ,
            "ROADSWARM_DATABASE_URL": url,
            "ROADSWARM_STORE_DIR": str(tmp_path / "store"),
            "ROADSWARM_CACHE_DIR": str(tmp_path / "cache"),
        }
        _roadswarm(chosen, "ingest", "migrate")
        yield chosen


def _roadswarm(env: dict[str, str], *args: str) -> Any:
    """Run `roadswarm ARGS --json` and return what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "roadswarm", *args, "--json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _wait_until_up(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "roadswarm serve exited"
        try:
            if httpx.get(f"{url}/v1/layers", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail("roadswarm serve did not answer")


def test_keys_lifecycle_and_rate_limit_shared_by_worker_processes(env: dict[str, str]) -> None:
    """Keys are created (shown once), listed without secrets, limited across two worker
    processes as one bucket, and refused once revoked."""
    created = _roadswarm(
        env, "api", "keys", "create", "--name", "acme", "--rate-per-s", "0.01", "--burst", "6"
    )
    key = created["key"]
    listed = _roadswarm(env, "api", "keys", "list")
    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert key not in json.dumps(listed)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "roadswarm", "serve", "--port", str(port), "--workers", "2"]
    with subprocess.Popen(command, cwd=REPO_ROOT, env=env, text=True) as server:
        try:
            _wait_until_up(url, server)
            # A new connection per request, so the kernel spreads them over both workers.
            codes = [
                httpx.get(f"{url}/v1/account/usage", headers={"X-API-Key": key}).status_code
                for _ in range(10)
            ]
            assert codes == [200] * 6 + [429] * 4
            _roadswarm(env, "api", "keys", "revoke", created["key_id"])
            after = httpx.get(f"{url}/v1/account/usage", params={"key": key})
            assert after.status_code == 401
        finally:
            server.terminate()
            server.wait(timeout=30)
