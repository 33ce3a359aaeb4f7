"""Live GNSS from a real gpsd: the simulated drive's NMEA log played into gpsd by gpsfake's engine
(Debian's gpsd and python3-gps; skipped without them unless services are required)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.gnss.feed import GpsdFeed
from edge.gnss.fix import Fix
from edge.gnss.nmea import read_nmea
from tests.gpsd_helpers import gpsfake
from tests.integration.edge_drive import REPO, TRIM_M, records


def test_gpsd_reports_the_logged_fixes(short_drive: Path) -> None:
    """Every epoch of the log arrives through gpsd, at the same time and place as the log says
    (gpsd rounds to 1e-9 degrees and 1 mm/s)."""
    logged = read_nmea(short_drive / "track.nmea").fixes
    with gpsfake(short_drive / "track.nmea", pace_s=0.01) as receiver:
        feed = GpsdFeed("127.0.0.1", receiver.port)
        deadline = time.monotonic() + 5
        while not feed.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        receiver.play()
        fixes: list[Fix] = []
        deadline = time.monotonic() + 30
        while len(fixes) < len(logged) and time.monotonic() < deadline:
            fixes += feed.take(0.5)
        feed.close()
    assert [f.time for f in fixes] == [f.time for f in logged]
    for live, log in zip(fixes, logged, strict=True):
        assert abs(live.lat - log.lat) < 1e-8 and abs(live.lon - log.lon) < 1e-8
        assert live.speed_mps == pytest.approx(log.speed_mps, abs=1e-3)
        assert live.course_deg == log.course_deg and live.fix_mode == 3
    assert not feed.bad


def test_edge_run_on_gpsd_takes_the_keyframes_of_the_log(
    short_drive: Path, processed_short_drive: Path, tmp_path: Path
) -> None:
    """`edge run --gpsd` with the drive's video keeps the keyframes `edge process --nmea` keeps,
    byte for byte (allowing a few to differ: gpsd rounds speeds to 1 mm/s, and distance is
    integrated from speed)."""
    spool = tmp_path / "spool"
    command = [sys.executable, "-m", "roadswarm", "--log-level", "INFO", "edge", "run"]
    command += ["--video", str(short_drive / "video.mp4")]
    command += ["--calibration", str(short_drive / "calibration.json"), "--trim-m", TRIM_M]
    command += ["--spool", str(spool), "--identity-dir", str(tmp_path / "id"), "--api", ""]
    command += ["--until-drained", "--json"]
    env = {**os.environ, "ROADSWARM_EDGE_GNSS_STALL_S": "2"}
    with gpsfake(short_drive / "track.nmea", pace_s=0.01) as receiver:
        command += ["--gpsd", f"127.0.0.1:{receiver.port}"]
        with subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as run:
            assert run.stderr is not None
            for line in run.stderr:  # play once it watches, so it sees the first epoch
                if "watching gpsd" in line:
                    receiver.play()
                    break
            out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    report = json.loads(out)
    assert report["stopped_because"] == "drained"
    live, reference = records(spool), records(processed_short_drive)
    assert abs(len(live) - len(reference)) <= 1
    assert len(set(live) & set(reference)) >= 0.9 * len(reference)
