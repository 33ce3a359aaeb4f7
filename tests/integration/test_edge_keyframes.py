"""Keyframe selection on a simulated drive, checked against the simulator's true poses."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.gnss.gpx import read_gpx
from edge.keyframes import (
    KeyframeRules,
    Plan,
    PrivacyZoneError,
    PrivacyZones,
    image_problem,
    plan_keyframes,
)
from edge.track import Pose, Track
from roadswarm.sim.drive import DriveOptions, simulate_drive
from roadswarm.sim.world import World

RULES = KeyframeRules(trim_m=50.0)


@pytest.fixture(scope="module")
def drive(grid_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-minute drive with stops, small frames (the selection only needs poses)."""
    out = tmp_path_factory.mktemp("kf") / "drive"
    simulate_drive(grid_world, out, DriveOptions(minutes=1.0, seed=8, width_px=320, height_px=180))
    return out


@pytest.fixture(scope="module")
def truth(drive: Path) -> dict[str, Any]:
    """The drive's truth file."""
    data: dict[str, Any] = json.loads((drive / "truth.json").read_text())
    return data


@pytest.fixture(scope="module")
def poses(drive: Path, truth: dict[str, Any]) -> list[Pose]:
    """Every frame's pose from the recorded GPX (with its GNSS error), as the edge app sees it."""
    track = Track(read_gpx(drive / "track.gpx").fixes)
    times = np.array([datetime.fromisoformat(f["time"]).timestamp() for f in truth["frames"]])
    return track.poses(times)


def test_keyframes_are_spaced_by_distance_travelled(
    poses: list[Pose], truth: dict[str, Any]
) -> None:
    """Consecutive keyframes lie about 4 m apart along the true path, despite the GNSS error."""
    plan = plan_keyframes(poses, RULES)
    assert len(plan.candidates) > 20
    along = np.array([truth["frames"][c.frame_index]["distance_m"] for c in plan.candidates])
    gaps = np.diff(along)
    assert 3.7 <= float(np.median(gaps)) <= 4.4, np.median(gaps)
    # Where a stop begins between two 1 Hz fixes, interpolated speed overstates the distance a
    # little: a gap can shrink, never to a duplicate.
    assert float(gaps.min()) >= 2.0
    total = truth["frames"][-1]["distance_m"]
    expected = (total - 2 * RULES.trim_m) / RULES.spacing_m
    assert abs(len(plan.candidates) - expected) <= 0.1 * expected + 2


def test_nothing_is_kept_while_standing_still(poses: list[Pose], truth: dict[str, Any]) -> None:
    """The drive has stops; no keyframe is taken where the vehicle truly stood (creeping while
    braking into a stop is moving)."""
    speeds = [f["speed_mps"] for f in truth["frames"]]
    assert min(speeds) < 0.1  # the simulator did stop
    plan = plan_keyframes(poses, RULES)
    assert all(speeds[c.frame_index] > 0.2 for c in plan.candidates)
    assert plan.skipped["stationary"] > 0


def test_trip_ends_are_trimmed(poses: list[Pose], truth: dict[str, Any]) -> None:
    """Nothing within the first or last trim distance of the trip (a few metres of GNSS slack)."""
    plan = plan_keyframes(poses, RULES)
    along = [truth["frames"][c.frame_index]["distance_m"] for c in plan.candidates]
    total = truth["frames"][-1]["distance_m"]
    assert min(along) >= RULES.trim_m - 5 and max(along) <= total - RULES.trim_m + 5


def test_privacy_zone_drops_frames_inside(
    poses: list[Pose], truth: dict[str, Any], grid_world: World, tmp_path: Path
) -> None:
    """A 30 m zone around a point on the route keeps every keyframe out of it."""
    plan = plan_keyframes(poses, RULES)
    middle = truth["frames"][plan.candidates[len(plan.candidates) // 2].frame_index]
    ring = [
        (middle["x_m"] + 30 * math.cos(a), middle["y_m"] + 30 * math.sin(a))
        for a in np.linspace(0, 2 * math.pi, 33)
    ]
    lon, lat = grid_world.frame.to_wgs84(
        np.array([p[0] for p in ring]), np.array([p[1] for p in ring])
    )
    zone = {
        "type": "Feature",
        "geometry": {
            "type": "Polygon",
            "coordinates": [list(zip(lon.tolist(), lat.tolist(), strict=True))],
        },
    }
    path = tmp_path / "home.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [zone]}))
    zoned: Plan = plan_keyframes(poses, RULES, PrivacyZones.read(path))
    assert zoned.skipped["privacy zone"] > 0
    for c in zoned.candidates:
        frame = truth["frames"][c.frame_index]
        assert math.hypot(frame["x_m"] - middle["x_m"], frame["y_m"] - middle["y_m"]) > 25


def test_bad_privacy_zone_file_is_a_clear_error(tmp_path: Path) -> None:
    """A file without polygons is refused with a message naming the file."""
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps({"type": "Point", "coordinates": [24.9, 60.1]}))
    with pytest.raises(PrivacyZoneError, match="no polygons"):
        PrivacyZones.read(path)


def test_blurred_and_dark_frames_are_refused(drive: Path) -> None:
    """A rendered frame passes; the same frame blurred or darkened does not."""
    capture = cv2.VideoCapture(str(drive / "video.mp4"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 900)
    ok, decoded = capture.read()
    capture.release()
    assert ok
    frame = np.asarray(decoded, np.uint8)
    assert image_problem(frame, RULES) is None
    assert (
        image_problem(np.asarray(cv2.GaussianBlur(frame, (0, 0), 4), np.uint8), RULES)
        == "too blurred"
    )
    assert image_problem((frame // 10).astype(np.uint8), RULES) == "too dark"
