"""Realistic GNSS poses for a simulated drive, the lane lines a map matcher implies, and pose
errors against the truth: the pose-refinement side of bench_tiles.

Realistic error (issue 7): the simulator's receiver model re-run over the drive's true
trajectory with 3 m of correlated error (Gauss-Markov, 30 s) plus its white jitter, and a 2°
correlated heading error added to the receiver's course; one seed per run. The distance driven
at each keyframe is the edge's own odometry over those fixes (`edge.keyframes.travelled` over
the poses of every video frame, as `edge process` plans keyframes), rounded as the edge records
it. Lane lines are the
driven segments' lane centres as the pipeline derives them from matched segments
(`mapbuilder.tiles.lanes`), the route in truth.json standing in for a correct map match.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge.gnss.fix import Fix
from edge.keyframes import KeyframeRules, travelled
from edge.package import TRAVELLED_DECIMALS
from edge.track import Track
from mapbuilder.tiles.bev import FramePose
from mapbuilder.tiles.lanes import MatchedRoad
from mapbuilder.tiles.lanes import lane_lines as pipeline_lane_lines
from mapbuilder.tiles.refine import LaneLine
from roadswarm.sim.drive import GROUND_ALTITUDE_M
from roadswarm.sim.gnss import GnssOptions, simulate_fixes
from roadswarm.sim.world import World

FloatArray = NDArray[np.float64]
POSITION_SIGMA_M = 3.0
HEADING_SIGMA_DEG = 2.0
CORRELATION_S = 30.0


@dataclass(frozen=True)
class Reported:
    """What a receiver with realistic error reports at each keyframe: the pose, its HDOP, the
    Doppler speed, the distance driven since the trip began as the edge records it, and whether
    a fix covers the keyframe's instant (the video runs on past the last fix, where the edge
    takes no keyframe)."""

    poses: list[FramePose]
    hdop: list[float | None]
    speed_mps: list[float]
    travelled_m: list[float | None]
    covered: list[bool]


def realistic_poses(
    world: World, drive_dir: Path, frames: list[dict[str, Any]], seed: int
) -> Reported:
    """Per keyframe, what a receiver with realistic error reports (one seed per run)."""
    truth = json.loads((drive_dir / "truth.json").read_text())
    samples = truth["frames"]
    t = np.array([f["t_s"] for f in samples])
    x, y = np.array([f["x_m"] for f in samples]), np.array([f["y_m"] for f in samples])
    start = datetime.fromisoformat(truth["video_start_time"])
    fixes = simulate_fixes(
        t,
        x,
        y,
        np.full_like(t, GROUND_ALTITUDE_M),
        np.array([f["speed_mps"] for f in samples]),
        np.array([f["heading_deg"] for f in samples]),
        frame=world.frame,
        start_time=start,
        options=GnssOptions(noise_m=POSITION_SIGMA_M, correlation_s=CORRELATION_S),
        rng=np.random.default_rng(seed),
    )
    track = Track(
        [
            Fix(f.time, f.lon, f.lat, f.altitude_m, f.speed_mps, f.course_deg, f.hdop, fix_mode=3)
            for f in fixes
        ]
    )
    times = np.array([start.timestamp() + f["t_s"] for f in frames])
    heading_error = _gauss_markov(times, HEADING_SIGMA_DEG, np.random.default_rng(seed + 7919))
    poses = track.poses(times)
    return Reported(
        [
            FramePose(p.lon, p.lat, (p.heading_deg + e) % 360.0, p.t_s)
            for p, e in zip(poses, heading_error, strict=True)
        ],
        [p.hdop for p in poses],
        [p.speed_mps for p in poses],
        _edge_odometry(track, start.timestamp(), samples, frames),
        [p.problem is None for p in poses],
    )


def _edge_odometry(
    track: Track, start_s: float, samples: list[dict[str, Any]], frames: list[dict[str, Any]]
) -> list[float | None]:
    """The distance the edge records at each keyframe: its odometry over the poses of every
    video frame (Doppler speed integrated, standing and GNSS gaps not counted), in centimetres."""
    every = track.poses(np.array([start_s + f["t_s"] for f in samples]))
    distance = travelled(every, KeyframeRules().stationary_below_mps)
    at = {f["index"]: float(d) for f, d in zip(samples, distance, strict=True)}
    return [round(at[f["index"]], TRAVELLED_DECIMALS) for f in frames]


def _gauss_markov(times: FloatArray, sigma: float, rng: np.random.Generator) -> FloatArray:
    """A stationary first-order Gauss-Markov series at irregular times."""
    out = np.empty(times.size)
    state = rng.normal(0.0, sigma)
    for k in range(times.size):
        if k:
            phi = math.exp(-(times[k] - times[k - 1]) / CORRELATION_S)
            state = phi * state + rng.normal(0.0, sigma * math.sqrt(1 - phi * phi))
        out[k] = state
    return out


def gnss_covered(
    world: World, drive_dir: Path, frames: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The keyframes a fix of the realistic receiver covers, as the edge takes them (its fixes
    come at the same instants whatever the seed)."""
    covered = realistic_poses(world, drive_dir, frames, seed=1).covered
    return [frame for frame, ok in zip(frames, covered, strict=True) if ok]


def lane_lines(world: World, drive_dir: Path) -> list[LaneLine]:
    """The lane lines the pipeline derives (`mapbuilder.tiles.lanes`) from the driven segments,
    the route in truth.json standing in for a correct map match."""
    route = json.loads((drive_dir / "truth.json").read_text())["route"]
    roads = {road.segment_id: road for road in world.segments}
    driven = [
        MatchedRoad(
            step["segment_id"],
            step["direction"],
            roads[step["segment_id"]].lonlat,
            roads[step["segment_id"]].oneway,
            roads[step["segment_id"]].lanes,
            roads[step["segment_id"]].width_m,
        )
        for step in route
    ]
    return pipeline_lane_lines(driven)


def pose_errors(
    world: World, frames: list[dict[str, Any]], poses: list[FramePose]
) -> dict[str, float]:
    """Median position error (also split along and across the road), median error of the step
    between consecutive frames (what doubles markings) and median heading error, against the
    truth."""
    tx, ty = np.array([f["x_m"] for f in frames]), np.array([f["y_m"] for f in frames])
    px, py = world.frame.to_local(
        np.array([p.lon for p in poses]), np.array([p.lat for p in poses])
    )
    ex, ey = px - tx, py - ty
    grid_heading = np.radians([f["heading_deg"] for f in frames])
    along = ex * np.sin(grid_heading) + ey * np.cos(grid_heading)
    across = ex * np.cos(grid_heading) - ey * np.sin(grid_heading)
    true_heading = np.array([f["true_heading"] for f in frames])
    turn = (np.array([p.heading_deg for p in poses]) - true_heading + 180.0) % 360.0 - 180.0
    return {
        "pose_error_m": round(float(np.median(np.hypot(ex, ey))), 3),
        "along_error_m": round(float(np.median(np.abs(along))), 3),
        "across_error_m": round(float(np.median(np.abs(across))), 3),
        "step_error_m": round(float(np.median(np.hypot(np.diff(ex), np.diff(ey)))), 3),
        "heading_error_deg": round(float(np.median(np.abs(turn))), 2),
    }
