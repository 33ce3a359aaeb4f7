"""Every keyframe arrives exactly once through a bad network: `edge upload` talks to the ingest
API (requests, upload forms and commits alike) through a proxy that adds latency, limits
bandwidth, resets connections partway and cuts responses short."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from edge.spool import Spool
from ingest.catalog import Frame
from ingest.db import Catalog
from roadswarm.api_server import free_port
from tests.edge_devices import CountingStore, device_with_frames, run_command, upload_command
from tests.ingest_helpers import make_jpeg, served_api
from tests.reliability.faultproxy import FaultProxy, Faults

# ROADSWARM_RELIABILITY_LONG=1 runs every network with more frames; the test command runs one.
LONG = os.environ.get("ROADSWARM_RELIABILITY_LONG") == "1"
FRAMES = 60 if LONG else 16
# The device's patience is hours; here a run gives up sooner and is simply started again, as
# systemd would restart it.
QUICK = {
    "ROADSWARM_EDGE_UPLOAD_ATTEMPTS": "4",
    "ROADSWARM_EDGE_UPLOAD_BACKOFF_BASE_S": "0.05",
    "ROADSWARM_EDGE_UPLOAD_BACKOFF_CAP_S": "0.5",
}
MAX_RUNS = 20
BAD_NETWORKS = {
    "resets": Faults(reset_rate=0.04, latency_s=0.002, seed=11),
    "truncated": Faults(truncate_rate=0.08, seed=12),
    "slow-and-flaky": Faults(
        reset_rate=0.02, truncate_rate=0.04, latency_s=0.01, bytes_per_s=4_000_000, seed=13
    ),
}


def _committed(catalog: Catalog) -> dict[str, str]:
    """frame_id -> object key of every frame in the catalog."""
    with catalog.session() as session:
        rows = session.execute(select(Frame.frame_id, Frame.object_key))
        return {frame_id: key for frame_id, key in rows}


@pytest.mark.parametrize("network", sorted(BAD_NETWORKS) if LONG else ["slow-and-flaky"])
def test_every_keyframe_arrives_once_through_a_bad_network(
    network: str, sqlite_catalog: Catalog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Runs of `edge upload` through the faulty proxy, restarted until one succeeds: every frame
    is in the catalog once with the bytes the device holds, the spool agrees, a further run
    sends nothing, and the API took the hang-ups in its stride (no errors logged)."""
    frames = [make_jpeg(seed) for seed in range(FRAMES)]
    identity_dir, spool_dir = device_with_frames(tmp_path, frames)
    port = free_port()
    with (
        FaultProxy(("127.0.0.1", port), BAD_NETWORKS[network]) as proxy,
        served_api(sqlite_catalog, tmp_path / "store", port=port, public_url=proxy.url) as api,
    ):
        store = CountingStore(api.store.root)  # type: ignore[attr-defined]
        api.services.store = store
        command = upload_command(proxy.url, identity_dir, spool_dir)
        env = {**os.environ, **QUICK}
        runs = [run_command(command, env=env)]
        while runs[-1].returncode != 0 and len(runs) < MAX_RUNS:
            assert runs[-1].returncode == 4, runs[-1].stderr  # "will retry", never a crash
            runs.append(run_command(command, env=env))
        assert runs[-1].returncode == 0, runs[-1].stderr
        print(f"{network}: {len(runs)} runs, {proxy.counters}")
        faults = proxy.counters.resets + proxy.counters.truncations
        assert faults >= 3, f"the proxy injected only {faults} faults: the test proved nothing"
        committed = _committed(api.catalog)
        assert sorted(committed) == sorted(hashlib.sha256(f).hexdigest() for f in frames)
        for frame_id, key in committed.items():
            assert hashlib.sha256(store.get_bytes(key)).hexdigest() == frame_id
        with Spool(spool_dir) as spool:
            assert spool.status()["keyframes"] == {"ready": 0, "uploaded": 0, "committed": FRAMES}
            assert spool.integrity_problems() == []
        again = run_command(command, env=env)
    assert again.returncode == 0, again.stderr
    assert (json.loads(again.stdout)["frames_uploaded"], len(store.writes)) == (0, FRAMES)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
