"""`roadswarm edge run` with uploads, SIGKILLed again and again while it captures, anonymizes and
uploads: no keyframe is lost, none is spooled or uploaded twice, and the spool stays consistent.

Kills are placed by progress, not by time (on a fast machine most timed kills would land after
the run had finished): points drawn at random over the run's work — candidates captured,
keyframes anonymized, keyframes committed — each hit by one run, killed just after reaching it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from edge.identity import create_identity
from ingest.catalog import Frame
from tests.edge_devices import REPO_ROOT, CountingStore, run_command
from tests.ingest_helpers import Harness
from tests.integration.edge_drive import assert_clean, records, run_args

# ROADSWARM_RELIABILITY_LONG=1 kills 60 times; the test command kills 12 times.
KILLS = 60 if os.environ.get("ROADSWARM_RELIABILITY_LONG") == "1" else 12
UPLOAD_DELAY_S = 0.05  # the store takes a little time, as a remote one would
PROGRESS = """
SELECT (SELECT COUNT(*) FROM raw_candidates)
     + (SELECT COUNT(*) FROM keyframes)
     + (SELECT COUNT(*) FROM keyframes WHERE state = 'committed')
"""


def progress(spool: Path) -> int:
    """Units of work the spool shows done: candidates, keyframes, committed keyframes."""
    try:
        with sqlite3.connect(spool / "spool.sqlite3", timeout=1) as db:
            return int(db.execute(PROGRESS).fetchone()[0])
    except sqlite3.Error:  # not created yet, or a table still missing
        return 0


def kill_past(command: list[str], spool: Path, point: float, extra_s: float) -> bool:
    """Run until the spool's progress passes `point`, then `extra_s` later SIGKILL; True if the
    kill hit a running process (False: the run finished first)."""
    with subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as process:
        deadline = time.monotonic() + 300
        while progress(spool) < point and process.poll() is None:
            assert time.monotonic() < deadline, "the run made no progress for 5 minutes"
            time.sleep(0.01)
        time.sleep(extra_s)
        alive = process.poll() is None
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        return alive


def test_killed_along_the_whole_run_loses_and_duplicates_nothing(
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
    points = sorted(rng.uniform(0, 3 * len(reference)) for _ in range(KILLS))
    hits = sum(kill_past(command, spool, point, rng.uniform(0.0, 0.3)) for point in points)
    print(f"{hits} of {KILLS} kills hit a running edge app")
    assert hits >= 0.75 * KILLS, f"only {hits} of {KILLS} kills hit a running process"
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
