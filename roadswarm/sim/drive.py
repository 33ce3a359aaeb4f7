"""`roadswarm sim drive`: one virtual drive through a world, rendered to video, GNSS logs and truth."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from roadswarm.files import UnwritableOutputError, ensure_writable_folder, write_atomically
from roadswarm.sim.actors import place_actors
from roadswarm.sim.camera import Calibration, Pose
from roadswarm.sim.gnss import GnssOptions, simulate_fixes, write_gpx, write_nmea
from roadswarm.sim.motion import Timeline, choose_stops, speed_profile, timeline
from roadswarm.sim.paint import intersection_nodes
from roadswarm.sim.render import FrameRenderer, PrivacyBox
from roadswarm.sim.roads import SPEED_KMH
from roadswarm.sim.route import DrivePath, RouteStep, lane_path, random_route
from roadswarm.sim.world import World

TRUTH_FORMAT = "roadswarm-drive-truth"
TRUTH_FORMAT_VERSION = 1
BASE_START = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
VIDEO_FOURCC = "mp4v"
# The world is flat; its ground sits at a plausible height above the ellipsoid for a coastal city.
GROUND_ALTITUDE_M = 20.0


@dataclass(frozen=True)
class DriveOptions:
    """What to drive and how the dashcam and GNSS receiver behave."""

    minutes: float = 1.0
    seed: int = 0
    fps: float = 30.0
    width_px: int = 1920
    height_px: int = 1080
    gnss: GnssOptions = field(default_factory=GnssOptions)
    start_time: datetime | None = None
    actor_spacing_m: float = 30.0
    device: str = "sim-device-0"

    def resolved_start(self) -> datetime:
        # Different seeds drive at different times of day, so drivers do not all start together.
        return self.start_time or BASE_START + timedelta(minutes=(self.seed * 37) % 720)


@dataclass(frozen=True)
class DriveSummary:
    """What one drive produced."""

    out_dir: str
    frames: int
    duration_s: float
    distance_m: float
    segments: int
    gnss_fixes: int
    plates_seen: int
    faces_seen: int
    segment_ids: tuple[str, ...]


def _junction_indices(path: DrivePath, route: list[RouteStep], junctions: set[int]) -> list[int]:
    changes = np.flatnonzero(np.diff(path.step_index)) + 1
    return [int(i) for i in changes if route[int(path.step_index[i]) - 1].exit_node in junctions]


def simulate_drive(world: World, out_dir: Path, options: DriveOptions) -> DriveSummary:
    """Drive a random route for `options.minutes` and write video, calibration, GPX, NMEA and truth."""
    ensure_writable_folder(out_dir)
    rng = random.Random(options.seed)
    route = random_route(world.roads, options.minutes * 60 * 16.0 + 300.0, rng)
    path = lane_path(route, {k: float(v) for k, v in SPEED_KMH.items()})
    junctions = set(intersection_nodes(world.roads))
    junction_indices = _junction_indices(path, route, junctions)
    stops = choose_stops(path, junction_indices, options.minutes, rng)
    clock = timeline(path, speed_profile(path, stops), stops)
    duration = min(options.minutes * 60.0, clock.duration_s)
    times = np.arange(int(duration * options.fps)) / options.fps
    s = clock.distance_at(times)
    x, y = np.interp(s, path.s_m, path.x_m), np.interp(s, path.s_m, path.y_m)
    heading = _interp_heading(s, path)
    speed = np.gradient(s, times) if len(times) > 1 else np.zeros_like(times)
    calibration = Calibration(width_px=options.width_px, height_px=options.height_px)
    actors = place_actors(
        path,
        route,
        rng,
        junctions_at_m=path.s_m[junction_indices],
        spacing_m=options.actor_spacing_m,
    )
    boxes = _render_video(
        world, calibration, actors, out_dir / "video.mp4", (x, y, heading), options
    )
    start = options.resolved_start()
    fixes = simulate_fixes(
        *_receiver_trajectory(clock, path, duration, options.gnss.rate_hz),
        frame=world.frame,
        start_time=start,
        options=options.gnss,
        rng=np.random.default_rng(options.seed),
    )
    write_gpx(fixes, out_dir / "track.gpx", name=f"{options.device} drive seed {options.seed}")
    write_nmea(fixes, out_dir / "track.nmea")
    calibration.write(out_dir / "calibration.json")
    route_truth = _route_truth(route, path, clock, float(s[-1]) if len(s) else 0.0)
    truth = _truth(
        world, options, start, calibration, route_truth, (times, x, y, heading, speed, s), boxes
    )
    write_atomically(out_dir / "truth.json", json.dumps(truth).encode())
    segment_ids = tuple(dict.fromkeys(entry["segment_id"] for entry in route_truth))
    return DriveSummary(
        str(out_dir),
        len(times),
        round(duration, 2),
        round(float(s[-1]) if len(s) else 0.0, 2),
        len(segment_ids),
        len(fixes),
        sum(1 for frame in boxes for b in frame if b.kind == "plate" and b.visible > 0.5),
        sum(1 for frame in boxes for b in frame if b.kind == "face" and b.visible > 0.5),
        segment_ids,
    )


def _receiver_trajectory(
    clock: Timeline, path: DrivePath, duration_s: float, rate_hz: float
) -> tuple[np.ndarray, ...]:
    """The true trajectory the GNSS receiver samples: it runs to the end of the video's last frame
    interval, as a real one keeps running, so every frame lies between two fixes."""
    times = np.arange(0.0, duration_s + 1e-9, 1.0 / (10 * rate_hz))
    s = clock.distance_at(times)
    x, y = np.interp(s, path.s_m, path.x_m), np.interp(s, path.s_m, path.y_m)
    speed = np.gradient(s, times)
    return times, x, y, np.full_like(x, GROUND_ALTITUDE_M), speed, _interp_heading(s, path)


def _interp_heading(s: np.ndarray, path: DrivePath) -> np.ndarray:
    """Heading at arc lengths `s`, interpolated across the 0/360 wrap."""
    unwrapped = np.degrees(np.unwrap(np.radians(path.heading_deg)))
    return np.asarray(np.interp(s, path.s_m, unwrapped) % 360.0)


def _render_video(
    world: World,
    calibration: Calibration,
    actors: list[Any],
    path: Path,
    poses: tuple[np.ndarray, np.ndarray, np.ndarray],
    options: DriveOptions,
) -> list[list[PrivacyBox]]:
    partial = path.with_suffix(".partial.mp4")
    size = (options.width_px, options.height_px)
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter.fourcc(*VIDEO_FOURCC), options.fps, size)
    if not writer.isOpened():
        msg = f"cannot open a {VIDEO_FOURCC} video writer for {partial}: check the folder and OpenCV build"
        raise UnwritableOutputError(msg)
    renderer = FrameRenderer(world.ortho, calibration, actors)
    boxes: list[list[PrivacyBox]] = []
    # Encoding runs beside rendering: OpenCV releases the GIL, so the two cores both work.
    with ThreadPoolExecutor(max_workers=1) as encoder:
        pending = None
        for xi, yi, hi in tqdm(
            zip(*poses, strict=True), total=len(poses[0]), desc="frames", disable=None
        ):
            frame, frame_boxes = renderer.render(Pose(float(xi), float(yi), float(hi)))
            boxes.append(frame_boxes)
            if pending is not None:
                pending.result()
            pending = encoder.submit(writer.write, frame)
        if pending is not None:
            pending.result()
    writer.release()
    partial.replace(path)
    return boxes


def _route_truth(
    route: list[RouteStep], path: DrivePath, clock: Any, driven_m: float
) -> list[dict[str, Any]]:
    """The segments actually driven, in order, with direction and the times the vehicle was on them."""
    entries = []
    for i, step in enumerate(route):
        on_step = np.flatnonzero(path.step_index == i)
        if not len(on_step) or path.s_m[on_step[0]] > driven_m:
            break
        s0, s1 = float(path.s_m[on_step[0]]), min(float(path.s_m[on_step[-1]]), driven_m)
        entries.append(
            {
                "segment_id": step.segment_id,
                "direction": "forward" if step.direction > 0 else "backward",
                "start_m": round(s0, 2),
                "end_m": round(s1, 2),
                "enter_s": round(float(np.interp(s0, clock.s_m, clock.t_s)), 3),
                "exit_s": round(float(np.interp(s1, clock.s_m, clock.t_s)), 3),
            }
        )
    return entries


def _truth(
    world: World,
    options: DriveOptions,
    start: datetime,
    calibration: Calibration,
    route: list[dict[str, Any]],
    samples: tuple[np.ndarray, ...],
    boxes: list[list[PrivacyBox]],
) -> dict[str, Any]:
    times, x, y, heading, speed, s = samples
    lon, lat = world.frame.to_wgs84(x, y)
    frames = [
        {
            "index": i,
            "time": (start + timedelta(seconds=float(times[i]))).isoformat(),
            "t_s": round(float(times[i]), 4),
            "x_m": round(float(x[i]), 4),
            "y_m": round(float(y[i]), 4),
            "lon": round(float(lon[i]), 9),
            "lat": round(float(lat[i]), 9),
            "heading_deg": round(float(heading[i]), 4),
            "speed_mps": round(float(speed[i]), 3),
            "distance_m": round(float(s[i]), 3),
            "boxes": [asdict(b) for b in boxes[i]],
        }
        for i in range(len(times))
    ]
    return {
        "format": TRUTH_FORMAT,
        "format_version": TRUTH_FORMAT_VERSION,
        "device": options.device,
        "seed": options.seed,
        "world": {
            "source": world.meta.source,
            "seed": world.meta.seed,
            "lon0": world.meta.lon0,
            "lat0": world.meta.lat0,
        },
        "local_crs": world.frame.proj4,
        "video_start_time": start.isoformat(),
        "fps": options.fps,
        "calibration": calibration.to_json(),
        "gnss": asdict(options.gnss),
        "route": route,
        "frames": frames,
    }
