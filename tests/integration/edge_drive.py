"""A short simulated drive shared by the live-capture suites, and the edge commands run on it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge.rawqueue import RawSpool
from edge.spool import Spool

REPO = Path(__file__).resolve().parents[2]
# 30 s at 15 fps is about 140 m: 20 m trims leave some twenty keyframes.
TRIM_M = "20"


def roadswarm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess."""
    command = [sys.executable, "-m", "roadswarm", *args]
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, check=False, timeout=600, env=env
    )


def process_args(drive: Path, spool: Path) -> list[str]:
    """`edge process` of the drive's video and NMEA log into `spool`."""
    files = ["--video", str(drive / "video.mp4"), "--nmea", str(drive / "track.nmea")]
    files += ["--calibration", str(drive / "calibration.json"), "--trim-m", TRIM_M]
    return ["edge", "process", *files, "--spool", str(spool), "--json"]


def run_args(drive: Path, spool: Path, identity: Path, *extra: str) -> list[str]:
    """`edge run` with the drive's video as the camera and its NMEA log as the receiver."""
    files = ["--video", str(drive / "video.mp4"), "--nmea", str(drive / "track.nmea")]
    files += ["--calibration", str(drive / "calibration.json"), "--trim-m", TRIM_M]
    where = ["--spool", str(spool), "--identity-dir", str(identity)]
    return ["edge", "run", *files, *where, "--until-drained", "--json", *extra]


def records(spool: Path) -> dict[str, dict[str, Any]]:
    """The spool's keyframe records by frame id."""
    with Spool(spool) as opened:
        return {r.frame_id: asdict(r) for r in opened.records()}


def assert_clean(spool: Path) -> None:
    """No raw frame left behind, nothing half written, the spool's own checks pass."""
    assert not list((spool / "raw").iterdir())
    assert not list((spool / "keyframes").glob(".*"))
    with RawSpool(spool) as opened:
        assert opened.integrity_problems() == []
        assert opened.raw_counts()["queued"] == 0


def kill_when(command: list[str], spool: Path, query: str | None, delay_s: float) -> None:
    """Start a run and SIGKILL it once `query` finds a row in its spool (or after `delay_s`)."""
    with subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as process:
        deadline = time.monotonic() + (60 if query else delay_s)
        while time.monotonic() < deadline and process.poll() is None:
            if query and _found(spool, query):
                break
            time.sleep(0.01)
        process.kill()


def _found(spool: Path, query: str) -> bool:
    try:
        with sqlite3.connect(spool / "spool.sqlite3", timeout=1) as db:
            return db.execute(query).fetchone() is not None
    except sqlite3.Error:  # not created yet
        return False
