"""The real `roadswarm api keys` and `roadswarm serve --workers 2` commands on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from mapbuilder.serve.usage import usage_of
from mapbuilder.tiles.store import TileStore
from roadswarm.api_server import free_port
from tests.ingest_helpers import postgres_database
from tests.integration.test_cli_errors import COMMAND_TIMEOUT_S, REPO_ROOT
from tests.serve_helpers import raster_tile

START_TIMEOUT_S = 60.0
KEY_CACHE_S = 1.0
FLUSH_S = 1.0


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment naming a fresh, migrated PostgreSQL catalog and a store folder."""
    with postgres_database() as url:
        chosen = {
            **os.environ,
            "ROADSWARM_DATABASE_URL": url,
            "ROADSWARM_STORE_DIR": str(tmp_path / "store"),
            "ROADSWARM_CACHE_DIR": str(tmp_path / "cache"),
            "ROADSWARM_SERVE_KEY_CACHE_S": str(KEY_CACHE_S),
            "ROADSWARM_SERVE_USAGE_FLUSH_S": str(FLUSH_S),
        }
        _roadswarm(chosen, "ingest", "migrate")
        yield chosen


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `roadswarm ARGS` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "roadswarm", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def _roadswarm(env: dict[str, str], *args: str) -> Any:
    """Run `roadswarm ARGS --json` and return what it printed."""
    result = _run(env, *args, "--json")
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


@contextmanager
def serving(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`roadswarm serve --workers 2` on a free port for the block; then SIGTERM, and it must
    stop cleanly (status 0)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "roadswarm", "serve", "--port", str(port), "--workers", "2"]
    with subprocess.Popen(command, cwd=REPO_ROOT, env=env, text=True) as server:
        try:
            _wait_until_up(url, server)
            yield url, server
        finally:
            server.terminate()
            status = server.wait(timeout=60)
    assert status == 0


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
    with serving(env) as (url, _):
        # A new connection per request, so the kernel spreads them over both workers.
        codes = [
            httpx.get(f"{url}/v1/account/usage", headers={"X-API-Key": key}).status_code
            for _ in range(10)
        ]
        assert codes == [200] * 6 + [429] * 4
        _roadswarm(env, "api", "keys", "revoke", created["key_id"])
        time.sleep(KEY_CACHE_S + 0.2)  # each worker trusts the key's row that long
        after = [
            httpx.get(f"{url}/v1/account/usage", params={"key": key}).status_code for _ in range(4)
        ]
        assert after == [401] * 4


def test_usage_from_two_worker_processes_is_counted_once(env: dict[str, str]) -> None:
    """Keyed tiles served by two worker processes (many from their fast path) show in the usage
    within the flush interval, and after a clean shutdown the catalog holds each tile once."""
    tile = (17, 74_868, 37_985)
    TileStore(LocalObjectStore(Path(env["ROADSWARM_STORE_DIR"]))).put(
        "imagery", tile, raster_tile((90, 90, 96), "WEBP")
    )
    created = _roadswarm(env, "api", "keys", "create", "--name", "busy", "--rate-per-s", "1000")
    path = f"/tiles/imagery/{tile[0]}/{tile[1]}/{tile[2]}.webp"
    with serving(env) as (url, _):
        headers = {"X-API-Key": created["key"]}
        codes = [httpx.get(url + path, headers=headers).status_code for _ in range(30)]
        codes += [
            httpx.get(url + path, params={"key": created["key"]}).status_code for _ in range(10)
        ]
        assert codes == [200] * 40
        assert _usage_shows(url, headers, tiles=40)
    catalog = Catalog.connect(env["ROADSWARM_DATABASE_URL"], migrate_schema=False)
    try:
        [day] = usage_of(catalog, created["key_id"])
    finally:
        catalog.dispose()
    assert (day.tiles, day.frames, day.credits) == (40, 0, 40)


def _usage_shows(url: str, headers: dict[str, str], *, tiles: int) -> bool:
    """Whether the usage reaches `tiles` within a few flush intervals (and never passes it)."""
    deadline = time.monotonic() + 10 * FLUSH_S
    while time.monotonic() < deadline:
        shown = httpx.get(f"{url}/v1/account/usage", headers=headers).json()["days"]
        counted = shown[0]["tiles"] if shown else 0
        assert counted <= tiles
        if counted == tiles:
            return True
        time.sleep(FLUSH_S / 4)
    return False


def _workers(server_pid: int) -> set[int]:
    """The worker processes of `roadswarm serve` (its spawned children, not multiprocessing's
    resource tracker)."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    return {
        int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    }


def test_a_worker_killed_outright_is_replaced(env: dict[str, str]) -> None:
    """With --workers 2 a worker that is SIGKILLed is replaced on its own socket: every request
    is answered meanwhile (those hashed to its socket wait for the new worker), and SIGTERM then
    stops the whole server with status 0."""
    with serving(env) as (url, server):
        before = _workers(server.pid)
        assert len(before) == 2
        os.kill(min(before), signal.SIGKILL)
        # New connections each, spread over both sockets by the kernel.
        codes = [
            httpx.get(f"{url}/v1/layers", timeout=START_TIMEOUT_S).status_code for _ in range(20)
        ]
        assert codes == [200] * 20
        after = _workers(server.pid)
        assert len(after) == 2 and min(before) not in after


def test_a_second_server_on_the_same_port_is_refused(env: dict[str, str]) -> None:
    """Workers share their port with each other, never with another server started by mistake:
    that one stops at once and says why."""
    with serving(env) as (url, _):
        port = url.rsplit(":", 1)[1]
        second = _run(env, "serve", "--port", port, "--workers", "2")
        assert second.returncode != 0
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
