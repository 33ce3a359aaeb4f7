"""`roadswarm edge run` with uploads, SIGKILLed again and again at random instants while it
captures, anonymizes and uploads: no keyframe is lost, none is spooled or uploaded twice, and the
spool stays consistent."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

from sqlalchemy import select

from edge.identity import create_identity
from ingest.catalog import Frame
from tests.edge_devices import CountingStore, run_command
from tests.ingest_helpers import Harness
from tests.integration.edge_drive import assert_clean, kill_when, records, run_args

# ROADSWARM_RELIABILITY_LONG=1 kills 60 times; the test command kills 12 times.
KILLS = 60 if os.environ.get("ROADSWARM_RELIABILITY_LONG") == "1" else 12
UPLOAD_DELAY_S = 0.05  # the store takes a little time, as a remote one would: kills land mid-upload


def test_killed_at_random_instants_loses_and_duplicates_nothing(
    processed_short_drive: Path, short_drive: Path, api: Harness, tmp_path: Path
) -> None:
    """After every kill a new run carries on; once one finishes, the spool holds exactly what an
    uninterrupted `edge process` spools, every keyframe is committed once, each object was
    written once, and no raw frame is left behind."""
    reference = records(processed_short_drive)
    store = CountingStore(api.store.root, delay_s=UPLOAD_DELAY_S)  # type: ignore[attr-defined]
    api.services.store = store
    spool, identity = tmp_path / "spool", tmp_path / "identity"
    create_identity(identity)
    command = [sys.executable, "-m", "roadswarm", *run_args(short_drive, spool, identity)]
    command += ["--api", api.url]
    rng = random.Random(2026)
    for _ in range(KILLS):
        kill_when(command, spool, None, rng.uniform(0.5, 8.0))
    final = run_command(command, timeout_s=600)
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["stopped_because"] == "drained"
    assert records(spool) == reference
    assert_clean(spool)
    with api.catalog.session() as session:
        committed = sorted(session.scalars(select(Frame.frame_id)))
    assert committed == sorted(reference)
    assert len(store.writes) == len(reference)
    assert max(store.writes.values()) == 1, "a keyframe was uploaded twice"
