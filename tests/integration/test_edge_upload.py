"""`roadswarm edge upload` as a real process against the served API: killed at random instants it
loses nothing and uploads nothing twice; offline it keeps everything; revoked it stops and says so."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

from sqlalchemy import func, select

from edge.identity import load_identity
from edge.spool import Spool
from ingest.catalog import Frame, utcnow
from ingest.db import Catalog
from ingest.devices import revoke_device
from roadswarm.api_server import free_port
from tests.edge_devices import (
    REPO_ROOT,
    CountingStore,
    device_with_frames,
    run_command,
    upload_command,
)
from tests.edge_records import record_for
from tests.ingest_helpers import Harness, make_jpeg

FRAMES = 40
UPLOAD_DELAY_S = 0.05
KILLS = 5


def _cataloged(catalog: Catalog) -> int:
    with catalog.session() as session:
        return int(session.scalar(select(func.count()).select_from(Frame)) or 0)


def test_killed_uploads_lose_nothing_and_send_nothing_twice(api: Harness, tmp_path: Path) -> None:
    """Five SIGKILLs at random instants, then a full run: each frame stored once, all committed."""
    store = CountingStore(api.store.root, delay_s=UPLOAD_DELAY_S)  # type: ignore[attr-defined]
    api.services.store = store
    frames = [make_jpeg(seed) for seed in range(FRAMES)]
    identity_dir, spool_dir = device_with_frames(tmp_path, frames)
    command = upload_command(api.url, identity_dir, spool_dir)
    rng = random.Random(5)
    for _ in range(KILLS):
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(2.0, 4.5))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    final = run_command(command)
    assert final.returncode == 0, final.stderr
    assert sum(store.writes.values()) > 0
    assert max(store.writes.values()) == 1, "a frame was uploaded twice"
    assert len(store.writes) == FRAMES
    assert _cataloged(api.catalog) == FRAMES
    with Spool(spool_dir) as spool:
        assert spool.status()["keyframes"] == {"ready": 0, "uploaded": 0, "committed": FRAMES}
        assert spool.integrity_problems() == []
    again = json.loads(run_command(command).stdout)
    assert (again["frames_uploaded"], again["batches_committed"]) == (0, 0)


def test_offline_keeps_everything_then_uploads_once(api: Harness, tmp_path: Path) -> None:
    """With the API down the command exits 4 and keeps the spool; once it is up, all arrive."""
    frames = [make_jpeg(seed) for seed in range(5)]
    identity_dir, spool_dir = device_with_frames(tmp_path, frames)
    offline = upload_command(f"http://127.0.0.1:{free_port()}", identity_dir, spool_dir)
    # Two quick attempts instead of the device's patient default.
    fast = {
        **os.environ,
        "ROADSWARM_EDGE_UPLOAD_ATTEMPTS": "2",
        "ROADSWARM_EDGE_UPLOAD_BACKOFF_BASE_S": "0.1",
    }
    down = run_command(offline, env=fast, timeout_s=120)
    assert down.returncode == 4, down.stderr
    assert "will retry" in down.stderr
    with Spool(spool_dir) as spool:
        assert spool.status()["keyframes"] == {"ready": 5, "uploaded": 0, "committed": 0}
        assert spool.status()["last_error"] is not None
    up = run_command(upload_command(api.url, identity_dir, spool_dir))
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["frames_committed"] == 5
    assert _cataloged(api.catalog) == 5


def test_a_revoked_device_is_told_and_keeps_its_spool(api: Harness, tmp_path: Path) -> None:
    """A revoked key gets a one-line refusal; what it spools afterwards stays, nothing is lost."""
    identity_dir, spool_dir = device_with_frames(tmp_path, [make_jpeg(seed) for seed in range(3)])
    command = upload_command(api.url, identity_dir, spool_dir)
    assert run_command(command).returncode == 0
    revoke_device(api.catalog, load_identity(identity_dir).device_id, now=utcnow())
    later = make_jpeg(99)
    with Spool(spool_dir) as spool:
        spool.add(record_for(later, "drive-2", 0), later)
    refused = run_command(command)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ") and "revoked" in refused.stderr
    with Spool(spool_dir) as spool:
        assert spool.status()["keyframes"] == {"ready": 1, "uploaded": 0, "committed": 3}
        assert spool.status()["last_error"] is not None
        assert spool.integrity_problems() == []
