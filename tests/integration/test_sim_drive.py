"""`roadswarm sim drive` end to end: the real command, its files read back with their own libraries."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import gpxpy
import numpy as np
import pynmea2
import pytest

from roadswarm.sim.world import World

MINUTES = 0.2
FPS = 30
WIDTH, HEIGHT = 640, 360
REPO = Path(__file__).resolve().parents[2]


def run_drive(world: World, out: Path, seed: int) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "roadswarm",
        "sim",
        "drive",
        "--world",
        str(world.root),
        "--out",
        str(out),
        "--minutes",
        str(MINUTES),
        "--seed",
        str(seed),
        "--resolution",
        f"{WIDTH}x{HEIGHT}",
        "--json",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def drive(grid_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short drive through the grid world."""
    out = tmp_path_factory.mktemp("drive") / "seed4"
    run_drive(grid_world, out, seed=4)
    return out


@pytest.fixture(scope="module")
def truth(drive: Path) -> dict[str, Any]:
    """The drive's truth file."""
    data: dict[str, Any] = json.loads((drive / "truth.json").read_text())
    return data


def read_frame(video: Path, index: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    assert ok, f"frame {index} of {video} does not decode"
    return np.asarray(frame)


def test_video_opens_with_opencv(drive: Path) -> None:
    """The MP4 decodes with OpenCV at the requested size, rate and length."""
    capture = cv2.VideoCapture(str(drive / "video.mp4"))
    assert capture.isOpened()
    assert int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == WIDTH
    assert int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == HEIGHT
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == int(MINUTES * 60 * FPS)


def test_gpx_and_nmea_open_and_agree(drive: Path, truth: dict[str, Any]) -> None:
    """gpxpy reads the GPX, pynmea2 verifies every NMEA checksum, and both hold the same fixes."""
    gpx = gpxpy.parse((drive / "track.gpx").read_text())
    points = [p for t in gpx.tracks for s in t.segments for p in s.points]
    first, last = truth["frames"][0], truth["frames"][-1]
    assert points[0].time is not None and points[-1].time is not None
    # The receiver covers every frame: a fix at or before the first, one at or after the last.
    assert (
        points[0].time.isoformat() <= first["time"] and points[-1].time.isoformat() >= last["time"]
    )
    assert len(points) == int(last["t_s"]) + 2  # 1 Hz, one fix past the last frame
    sentences = [
        pynmea2.parse(line, check=True) for line in (drive / "track.nmea").read_text().splitlines()
    ]
    rmc = [s for s in sentences if isinstance(s, pynmea2.RMC)]
    assert len(rmc) == len(points)
    for point, sentence in zip(points, rmc, strict=True):
        assert sentence.latitude == pytest.approx(point.latitude, abs=1e-6)
        assert sentence.longitude == pytest.approx(point.longitude, abs=1e-6)


def test_gnss_error_is_realistic(drive: Path, truth: dict[str, Any], grid_world: World) -> None:
    """Fixes lie metres, not centimetres or hundreds of metres, from the true positions."""
    gpx = gpxpy.parse((drive / "track.gpx").read_text())
    points = [p for t in gpx.tracks for s in t.segments for p in s.points]
    frames = {f["time"]: f for f in truth["frames"]}
    errors = []
    for point in points:
        frame = frames.get(point.time.isoformat()) if point.time else None
        if frame is None:
            continue
        x, y = grid_world.frame.to_local(np.array([point.longitude]), np.array([point.latitude]))
        errors.append(math.hypot(float(x[0]) - frame["x_m"], float(y[0]) - frame["y_m"]))
    assert len(errors) >= len(points) - 1
    assert 0.2 < float(np.median(errors)) < 10.0


def test_truth_route_and_boxes_are_consistent(truth: dict[str, Any], grid_world: World) -> None:
    """The route names real segments in driving order, and privacy boxes lie inside the frame."""
    known = {s.segment_id for s in grid_world.segments}
    assert truth["route"] and all(step["segment_id"] in known for step in truth["route"])
    assert all(
        a["end_m"] <= b["start_m"] + 1.0
        for a, b in zip(truth["route"], truth["route"][1:], strict=False)
    )
    assert len(truth["frames"]) == int(MINUTES * 60 * FPS)
    for frame in truth["frames"]:
        for box in frame["boxes"]:
            assert box["x"] >= 0 and box["x"] + box["w"] <= WIDTH
            assert box["y"] >= 0 and box["y"] + box["h"] <= HEIGHT
            assert box["kind"] in {"plate", "face"}


def test_same_seed_same_output(drive: Path, grid_world: World, tmp_path: Path) -> None:
    """A second drive with the same seed writes identical files; another seed drives elsewhere."""
    again = tmp_path / "again"
    run_drive(grid_world, again, seed=4)
    for name in ("truth.json", "track.gpx", "track.nmea", "calibration.json"):
        assert (again / name).read_bytes() == (drive / name).read_bytes(), name
    for index in (0, 100, 300):
        assert np.array_equal(
            read_frame(again / "video.mp4", index), read_frame(drive / "video.mp4", index)
        )
    other = tmp_path / "other"
    run_drive(grid_world, other, seed=5)
    digest = hashlib.sha256((other / "truth.json").read_bytes()).hexdigest()
    assert digest != hashlib.sha256((drive / "truth.json").read_bytes()).hexdigest()


def camera_rotation(heading_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """World (east, north, up) to OpenCV camera axes, written from the documented conventions."""
    yaw = np.radians(heading_deg)
    # Start looking north with x east, y down, z north; then yaw clockwise, pitch down, roll.
    look_north = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    yaw_rotation = np.array(
        [[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1.0]]
    )
    pitch, roll = np.radians(pitch_deg), np.radians(roll_deg)
    pitch_down = np.array(
        [[1.0, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]]
    )
    roll_cw = np.array(
        [[np.cos(roll), np.sin(roll), 0], [-np.sin(roll), np.cos(roll), 0], [0, 0, 1.0]]
    )
    return np.asarray(roll_cw @ pitch_down @ look_north @ yaw_rotation)


def ground_grid(
    frame: dict[str, Any], ahead: tuple[float, float], across: float, step: float
) -> np.ndarray:
    """Ground points (x, y, 0) in a rectangle ahead of the vehicle."""
    heading = np.radians(frame["heading_deg"])
    forward = np.array([np.sin(heading), np.cos(heading)])
    right = np.array([np.cos(heading), -np.sin(heading)])
    a, b = np.meshgrid(np.arange(*ahead, step), np.arange(-across, across, step))
    xy = (
        np.array([frame["x_m"], frame["y_m"]])
        + a.reshape(-1, 1) * forward
        + b.reshape(-1, 1) * right
    )
    return np.column_stack([xy, np.zeros(len(xy))])


def sample(image: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    mapped = cv2.remap(
        gray,
        cols.astype(np.float32).reshape(1, -1),
        rows.astype(np.float32).reshape(1, -1),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=np.nan,
    )
    return np.asarray(mapped).ravel()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    keep = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[keep], b[keep])[0, 1])


@pytest.mark.parametrize("index", [60, 200, 340])
def test_orthophoto_points_project_where_the_frame_shows_them(
    drive: Path, truth: dict[str, Any], grid_world: World, index: int
) -> None:
    """Ground points projected through the calibration file and true pose match the frame's pixels.

    The frame is compared with the orthophoto at image shifts of up to 4 px: the best match must be
    within one pixel of no shift, so projection, pose and rendering agree to a pixel or two.
    """
    calibration = json.loads((drive / "calibration.json").read_text())
    frame = truth["frames"][index]
    # Within 1.5 m of the vehicle's line no parked car or person stands between camera and ground.
    points = ground_grid(frame, ahead=(4.0, 10.0), across=1.5, step=0.05)
    rotation = camera_rotation(
        frame["heading_deg"], calibration["pitch_deg"], calibration["roll_deg"]
    )
    centre = np.array([frame["x_m"], frame["y_m"], calibration["mount_height_m"]])
    rvec, _ = cv2.Rodrigues(rotation)
    uv, _ = cv2.projectPoints(
        points,
        rvec,
        -rotation @ centre,
        np.array(calibration["camera_matrix"]),
        np.array(calibration["dist_coeffs"]),
    )
    uv = uv.reshape(-1, 2)
    ortho, (west, north) = grid_world.ortho.read_bbox(
        (
            points[:, 0].min() - 1,
            points[:, 1].min() - 1,
            points[:, 0].max() + 1,
            points[:, 1].max() + 1,
        )
    )
    res = grid_world.meta.resolution_m
    truth_values = sample(
        ortho, (points[:, 0] - west) / res - 0.5, (north - points[:, 1]) / res - 0.5
    )
    image = read_frame(drive / "video.mp4", frame["index"])
    shifts = [(du, dv) for du in range(-4, 5) for dv in range(-4, 5)]
    scores = {
        s: correlation(sample(image, uv[:, 0] + s[0], uv[:, 1] + s[1]), truth_values)
        for s in shifts
    }
    best = max(scores, key=lambda s: scores[s])
    assert abs(best[0]) <= 1 and abs(best[1]) <= 1, (best, scores[best], scores[(0, 0)])
    assert scores[best] > 0.5, scores[best]
    # The match must fall off both across and along the image, so neither axis is left unchecked.
    across = max(scores[(4, 0)], scores[(-4, 0)])
    along = max(scores[(0, 4)], scores[(0, -4)])
    assert scores[best] - across > 0.1 and scores[best] - along > 0.1, (across, along)
