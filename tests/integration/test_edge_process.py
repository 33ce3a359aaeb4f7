"""`roadswarm edge process` end to end on a simulated drive, with the real privacy models."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import math
import os
import pty
import random
import shutil
import struct
import subprocess
import sys
import termios
import time
from dataclasses import asdict
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image
from PIL.ExifTags import GPS, IFD, Base

from edge.gnss.gpx import read_gpx
from edge.identity import create_identity
from edge.keyframes import KeyframeRules, travelled
from edge.spool import Spool
from edge.sync import SyncError, estimate_offset
from edge.track import Track
from roadswarm.sim.drive import DriveOptions, simulate_drive
from roadswarm.sim.world import World

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def drive(grid_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-minute drive at 640x360."""
    out = tmp_path_factory.mktemp("process") / "drive"
    simulate_drive(grid_world, out, DriveOptions(minutes=1.0, seed=8, width_px=640, height_px=360))
    return out


def edge_command(drive: Path, out: Path, *extra: str) -> list[str]:
    """`roadswarm edge process` on the drive's own files, spooling into `out`."""
    files = ["--video", str(drive / "video.mp4"), "--gpx", str(drive / "track.gpx")]
    files += ["--calibration", str(drive / "calibration.json")]
    options = ["--trim-m", "50", "--spool", str(out), "--json", *extra]
    return [sys.executable, "-m", "roadswarm", "edge", "process", *files, *options]


def edge_process(
    drive: Path, out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = edge_command(drive, out, *extra)
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        command, cwd=REPO, env=environment, capture_output=True, text=True, check=False, timeout=600
    )


def spooled(out: Path) -> list[dict[str, Any]]:
    with Spool(out) as spool:
        return [asdict(r) for r in spool.records()]


@pytest.fixture(scope="module")
def processed(drive: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The drive through `edge process`."""
    out = tmp_path_factory.mktemp("process") / "spool"
    done = edge_process(drive, out)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return out, report


def degrees(value: tuple[float, float, float], ref: str) -> float:
    d, m, s = (float(v) for v in value)
    return (d + m / 60 + s / 3600) * (-1 if ref in {"S", "W"} else 1)


def test_every_keyframe_is_spooled_once_with_its_record(
    processed: tuple[Path, dict[str, Any]],
) -> None:
    """Each record names a file whose sha256 is its id; the report counts them."""
    out, report = processed
    records = spooled(out)
    assert report["keyframes"] == len(records) > 20
    assert len({r["frame_id"] for r in records}) == len(records)
    assert sorted(r["index"] for r in records) == list(range(len(records)))
    for record in records:
        data = (out / "keyframes" / f"{record['frame_id']}.jpg").read_bytes()
        assert hashlib.sha256(data).hexdigest() == record["frame_id"]
    assert report["frames"] == 1800
    assert report["skipped"]["between keyframes"] > 0
    with Spool(out) as spool:
        assert spool.integrity_problems() == []
        assert spool.status()["keyframes"] == {"ready": len(records), "uploaded": 0, "committed": 0}


def test_processing_again_adds_nothing(processed: tuple[Path, dict[str, Any]], drive: Path) -> None:
    """A second run over the same recording finds every keyframe already in the spool."""
    out, first = processed
    done = edge_process(drive, out)
    assert done.returncode == 0, done.stderr
    again = json.loads(done.stdout)
    assert again["keyframes"] == 0
    assert again["skipped"]["already in the spool"] == first["keyframes"]
    assert len(spooled(out)) == first["keyframes"]


def test_frames_anonymized_at_once_give_the_same_spool_as_one_at_a_time(
    drive: Path, tmp_path: Path
) -> None:
    """Three keyframes in flight on three threads: the same records, in the same order, as one
    keyframe at a time (one detector thread each, so the arithmetic is the same)."""
    spools = {}
    for frames in ("1", "3"):
        env = {"ROADSWARM_PRIVACY_PARALLEL_FRAMES": frames, "ROADSWARM_PRIVACY_THREADS": "1"}
        done = edge_process(drive, tmp_path / frames, env=env)
        assert done.returncode == 0, done.stderr
        spools[frames] = spooled(tmp_path / frames)
    assert len(spools["1"]) > 20
    assert spools["3"] == spools["1"]


def test_killed_runs_lose_nothing_and_duplicate_nothing(
    processed: tuple[Path, dict[str, Any]], drive: Path, tmp_path: Path
) -> None:
    """SIGKILL at random moments, then a full run: the spool equals an uninterrupted run's."""
    reference = {r["frame_id"] for r in spooled(processed[0])}
    out = tmp_path / "killed"
    rng = random.Random(5)
    for _ in range(5):
        with subprocess.Popen(
            edge_command(drive, out), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as process:
            time.sleep(rng.uniform(2.0, 6.0))
            process.kill()
    done = edge_process(drive, out)
    assert done.returncode == 0, done.stderr
    assert {r["frame_id"] for r in spooled(out)} == reference
    with Spool(out) as spool:
        assert spool.integrity_problems() == []
    assert not list((out / "keyframes").glob(".*"))


def test_keyframes_carry_map_exif_and_nothing_personal(
    processed: tuple[Path, dict[str, Any]],
) -> None:
    """GPS position, direction and time are in the EXIF; no camera make, model or serial."""
    out, _ = processed
    record = spooled(out)[0]
    image = Image.open(io.BytesIO((out / "keyframes" / f"{record['frame_id']}.jpg").read_bytes()))
    exif = image.getexif()
    gps = exif.get_ifd(IFD.GPSInfo)
    assert degrees(gps[GPS.GPSLatitude], gps[GPS.GPSLatitudeRef]) == pytest.approx(
        record["lat"], abs=1e-6
    )
    assert degrees(gps[GPS.GPSLongitude], gps[GPS.GPSLongitudeRef]) == pytest.approx(
        record["lon"], abs=1e-6
    )
    assert float(gps[GPS.GPSImgDirection]) == pytest.approx(record["heading_deg"], abs=0.01)
    assert exif.get_ifd(IFD.Exif)[Base.DateTimeOriginal]
    for tag in (Base.Make, Base.Model, Base.BodySerialNumber, Base.CameraOwnerName):
        assert tag not in exif and tag not in exif.get_ifd(IFD.Exif)


def test_keyframes_are_where_the_vehicle_was(
    processed: tuple[Path, dict[str, Any]], drive: Path, grid_world: World
) -> None:
    """Recorded positions are within GNSS error of the true pose of their source frame."""
    out, _ = processed
    truth = json.loads((drive / "truth.json").read_text())
    for record in spooled(out):
        frame = truth["frames"][record["source_frame"]]
        x, y = grid_world.frame.to_local(np.array([record["lon"]]), np.array([record["lat"]]))
        assert math.hypot(float(x[0]) - frame["x_m"], float(y[0]) - frame["y_m"]) < 12.0


def test_records_carry_the_distance_driven_at_their_own_frame(
    processed: tuple[Path, dict[str, Any]], drive: Path, tmp_path: Path
) -> None:
    """Each record's `travelled_m` is the edge's odometry at the frame it was taken from (speed
    integrated over every frame since the trip began), in centimetres, never decreasing along
    the sequence; the sealed manifest carries it to the server."""
    out, _ = processed
    log = read_gpx(drive / "track.gpx")
    video = cv2.VideoCapture(str(drive / "video.mp4"))
    fps, count = video.get(cv2.CAP_PROP_FPS), int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    video.release()
    # Without --video-start, `edge process` starts the video at the log's first fix.
    times = log.fixes[0].time.timestamp() + np.arange(count) / fps
    distance = travelled(Track(log.fixes).poses(times), KeyframeRules().stationary_below_mps)
    records = sorted(spooled(out), key=lambda r: int(r["index"]))
    assert [r["travelled_m"] for r in records] == [
        round(float(distance[r["source_frame"]]), 2) for r in records
    ]
    assert all(a["travelled_m"] < b["travelled_m"] for a, b in pairwise(records))
    copy = tmp_path / "spool"  # sealing a copy leaves the module's spool as the others expect
    shutil.copytree(out, copy)
    with Spool(copy) as spool:
        signed = spool.seal_batch(create_identity(tmp_path / "identity"), max_frames=1000)
    assert signed is not None
    assert [f.travelled_m for f in signed.manifest.frames] == [r["travelled_m"] for r in records]


def test_video_and_gnss_that_do_not_overlap_are_refused(drive: Path, tmp_path: Path) -> None:
    """A start time a day off is one clear error line naming the fix, and nothing is written."""
    done = edge_process(drive, tmp_path / "out", "--video-start", "2026-06-02T06:00:00+00:00")
    assert done.returncode != 0
    assert (
        done.stderr.count("\n") == 1
        and "do not overlap" in done.stderr
        and "--video-start" in done.stderr
    )
    assert not list((tmp_path / "out").glob("keyframes/*.jpg"))


def test_unreadable_video_is_refused(drive: Path, tmp_path: Path) -> None:
    """A truncated, corrupted video file is a clear error, not a traceback."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "video.mp4").write_bytes((drive / "video.mp4").read_bytes()[:2000])
    for name in ("track.gpx", "calibration.json"):
        (broken / name).write_bytes((drive / name).read_bytes())
    done = edge_process(broken, tmp_path / "out")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "cannot read" in done.stderr


def test_nmea_log_gives_about_the_same_keyframes_as_gpx(
    processed: tuple[Path, dict[str, Any]], drive: Path, tmp_path: Path
) -> None:
    """The NMEA log of the same drive gives about as many keyframes. Not the same ones: RMC carries
    Doppler speed, which the odometry prefers, while the GPX has positions only."""
    command = edge_command(drive, tmp_path / "nmea")
    at = command.index("--gpx")
    command[at : at + 2] = ["--nmea", str(drive / "track.nmea")]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, check=False, timeout=600
    )
    assert done.returncode == 0, done.stderr
    from_gpx, from_nmea = len(spooled(processed[0])), len(spooled(tmp_path / "nmea"))
    assert abs(from_nmea - from_gpx) <= 0.15 * from_gpx


def test_gnss_log_without_a_usable_fix_is_refused(drive: Path, tmp_path: Path) -> None:
    """An NMEA log of garbage is one clear error line that counts the bad records."""
    garbage = tmp_path / "garbage.nmea"
    garbage.write_text("$GPRMC,not,a,sentence*00\r\nhello\r\n")
    command = edge_command(drive, tmp_path / "out")
    at = command.index("--gpx")
    command[at : at + 2] = ["--nmea", str(garbage)]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, check=False, timeout=600
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no usable fix (2 bad records)" in done.stderr


def test_video_start_is_estimated_from_motion(drive: Path, tmp_path: Path) -> None:
    """Told a start 5 s too late, `--estimate-offset` finds the shift back to within a second (the
    accuracy measured on simulated drives: -1.0 to +0.4 s)."""
    truth = json.loads((drive / "truth.json").read_text())
    wrong = datetime.fromisoformat(truth["video_start_time"]) + timedelta(seconds=5)
    done = edge_process(
        drive, tmp_path / "spool", "--video-start", wrong.isoformat(), "--estimate-offset"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["video_offset_s"] == pytest.approx(-5.0, abs=1.0)


def test_offset_search_gives_up_clearly_without_a_match(drive: Path, tmp_path: Path) -> None:
    """A motion profile that does not follow the speed at all is refused, not guessed."""
    track = Track(read_gpx(drive / "track.gpx").fixes)
    times = np.arange(0.0, 50.0, 0.1)
    flat = np.random.default_rng(0).normal(0.0, 1.0, len(times))
    with pytest.raises(SyncError, match="--video-start"):
        estimate_offset(track, float(track.t_s[0]), times, flat)


def test_a_terminal_sees_a_progress_bar_and_logs_do_not(drive: Path, tmp_path: Path) -> None:
    """On a terminal the driver sees the video's frames counted up to 100 %; with output to a
    file (a log, a pipe) no bar is drawn."""
    command = edge_command(drive, tmp_path / "tty-spool")
    command.remove("--json")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command on a 100-column terminal
        fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        os.chdir(REPO)
        os.execv(command[0], command)
    shown = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    assert os.waitpid(pid, 0)[1] == 0, shown.decode(errors="replace")
    text = shown.decode(errors="replace")
    assert "video.mp4: 100%" in text
    assert "frame/s" in text
    piped = edge_process(drive, tmp_path / "piped-spool")
    assert piped.returncode == 0, piped.stderr
    assert "100%" not in piped.stderr
