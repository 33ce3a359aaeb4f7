"""`roadswarm edge run` as a real process on a simulated drive (its video as the camera, its NMEA log
as the receiver): the same keyframes as `edge process`, nothing lost or doubled across SIGKILLs,
and uploads in the same loop that wait out an unreachable server."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from edge.identity import create_identity
from edge.rawcrypt import KEY_FILE
from edge.rawqueue import RawSpool
from ingest.catalog import Frame
from roadswarm.api_server import free_port
from tests.ingest_helpers import Harness
from tests.integration.edge_drive import (
    REPO,
    assert_clean,
    kill_when,
    records,
    roadswarm,
    run_args,
)


@pytest.fixture(scope="module")
def live_run(short_drive: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The drive through `edge run --until-drained` without an API: its spool and identity."""
    base = tmp_path_factory.mktemp("live")
    spool, identity = base / "spool", base / "identity"
    create_identity(identity)
    done = roadswarm(*run_args(short_drive, spool, identity, "--api", ""))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stopped_because"] == "drained"
    return spool, identity


def test_live_capture_spools_exactly_what_edge_process_spools(
    live_run: tuple[Path, Path], processed_short_drive: Path
) -> None:
    """Same frame ids, same records; raw frames deleted once anonymized; the key is private;
    `edge status --json` reports the raw queue empty."""
    spool, identity = live_run
    reference = records(processed_short_drive)
    assert len(reference) > 10
    assert records(spool) == reference
    assert_clean(spool)
    assert (identity / KEY_FILE).stat().st_mode & 0o777 == 0o600
    status = roadswarm("edge", "status", "--spool", str(spool), "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["raw_candidates"]["queued"] == 0
    assert shown["raw_candidates"]["done"] == len(reference)
    assert shown["keyframes"]["ready"] == len(reference)


MID_CAPTURE = (
    "SELECT 1 FROM raw_trips t JOIN raw_candidates c USING (sequence_id) WHERE t.state = 'open'"
)
MID_PRIVACY = (
    "SELECT 1 FROM keyframes WHERE EXISTS (SELECT 1 FROM raw_candidates WHERE state = 'queued')"
)


def test_killed_runs_lose_nothing_and_duplicate_nothing(
    live_run: tuple[Path, Path], short_drive: Path, tmp_path: Path
) -> None:
    """SIGKILL mid-capture, mid-anonymization and at random instants, then a full run: the spool
    equals an uninterrupted run's and the raw queue is empty."""
    reference = records(live_run[0])
    spool, identity = tmp_path / "spool", tmp_path / "identity"
    command = [sys.executable, "-m", "roadswarm", *run_args(short_drive, spool, identity)]
    command += ["--api", ""]
    rng = random.Random(11)
    for query in (MID_CAPTURE, MID_PRIVACY, None):
        kill_when(command, spool, query, rng.uniform(2.0, 5.0))
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert records(spool) == reference
    assert_clean(spool)


def test_uploads_wait_out_an_unreachable_server_then_commit_everything_once(
    live_run: tuple[Path, Path], short_drive: Path, tmp_path: Path, api: Harness
) -> None:
    """With the server down the run ends normally, keeps every keyframe and says it will retry;
    the next run with the server up commits each keyframe exactly once."""
    spool, identity = tmp_path / "spool", tmp_path / "identity"
    shutil.copytree(live_run[0], spool)
    shutil.copytree(live_run[1], identity)
    keyframes = len(records(spool))
    env = {**os.environ, "ROADSWARM_EDGE_UPLOAD_ATTEMPTS": "1"}
    down = f"http://127.0.0.1:{free_port()}"
    offline = roadswarm(*run_args(short_drive, spool, identity, "--api", down), env=env)
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["upload"]["retry_later"]
    status = json.loads(roadswarm("edge", "status", "--spool", str(spool), "--json").stdout)
    assert status["keyframes"]["ready"] == keyframes
    assert "will retry" in status["last_error"]["message"]
    online = roadswarm(*run_args(short_drive, spool, identity, "--api", api.url), env=env)
    assert online.returncode == 0, online.stderr
    assert json.loads(online.stdout)["upload"]["frames_committed"] == keyframes
    with api.catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Frame)) == keyframes
    with RawSpool(spool) as opened:
        assert opened.status()["keyframes"] == {"ready": 0, "uploaded": 0, "committed": keyframes}
