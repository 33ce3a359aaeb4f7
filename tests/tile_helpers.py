"""A simulated drive put into a catalog as ingest leaves it: keyframes every 4 m as stored JPEGs,
accepted frame rows with the drive's camera, the world's roads, and matches from the real matcher."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ingest.catalog import Camera, Device, Frame, FrameState, utcnow
from ingest.db import Catalog
from ingest.protocol import CameraCalibration, frame_object_key
from ingest.states import SequenceKey
from ingest.storage import ObjectStore
from mapbuilder.catalog import load_network, store_network
from mapbuilder.geo import LocalFrame
from mapbuilder.match_stage import match_sequences
from mapbuilder.matching.matcher import MapMatcher
from mapbuilder.roads.network import RoadNetwork
from mapbuilder.tiles.context import TileContext
from mapbuilder.tiles.posing import PoseUpdate, update_poses
from roadswarm.sim.drive import DriveOptions, simulate_drive
from roadswarm.sim.world import World

SPACING_M = 4.0


@dataclass(frozen=True)
class Keyframe:
    """A keyframe of a simulated drive: its JPEG, its pose (true unless `with_gnss_error` moved
    it), speed, and the metres driven since the trip began as the device's odometry says (None:
    a device that sends none)."""

    jpeg: bytes
    lon: float
    lat: float
    heading_deg: float
    t_s: float
    speed_mps: float = 10.0
    travelled_m: float | None = None

    @property
    def frame_id(self) -> str:
        """The sha256 of the JPEG, as the edge names frames."""
        return hashlib.sha256(self.jpeg).hexdigest()


def simulated(world: World, folder: Path, **options: Any) -> Path:
    """A drive simulated over `world` with `DriveOptions(**options)`, written in `folder`/drive."""
    out = folder / "drive"
    simulate_drive(world, out, DriveOptions(**options))
    return out


def keyframes(
    world: World, drive_dir: Path, *, start: int = 0, stop: int | None = None
) -> list[Keyframe]:
    """The drive's frames every 4 m of true travel (from index `start` to `stop`), as JPEGs."""
    truth = json.loads((drive_dir / "truth.json").read_text())
    capture = cv2.VideoCapture(str(drive_dir / "video.mp4"))
    chosen, last = [], -1e9
    for frame in truth["frames"][: stop if stop is not None else None]:
        ok, image = capture.read()
        if not ok:
            break
        if frame["index"] < start or frame["distance_m"] - last < SPACING_M:
            continue
        last = frame["distance_m"]
        encoded, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert encoded
        convergence = world.frame.grid_convergence_deg(frame["x_m"], frame["y_m"])
        heading = (frame["heading_deg"] + convergence) % 360.0
        chosen.append(
            Keyframe(
                jpeg.tobytes(),
                frame["lon"],
                frame["lat"],
                heading,
                frame["t_s"],
                frame["speed_mps"],
            )
        )
    capture.release()
    return chosen


def reencoded(frame: Keyframe, quality: int = 85) -> Keyframe:
    """The frame as another dashcam's JPEG encoder would write it (other bytes, so another id)."""
    pixels = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert pixels is not None
    encoded, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert encoded
    return replace(frame, jpeg=jpeg.tobytes())


def with_gnss_error(
    frames: list[Keyframe],
    *,
    bias_m: tuple[float, float],
    jitter_m: float,
    heading_deg: float,
    seed: int,
) -> list[Keyframe]:
    """The keyframes as a receiver reports them: off by `bias_m` (east, north) plus white
    `jitter_m` per axis, headings off by white `heading_deg` (standard deviations)."""
    rng = np.random.default_rng(seed)
    local = LocalFrame(frames[0].lon, frames[0].lat)
    x, y = local.to_local(np.array([f.lon for f in frames]), np.array([f.lat for f in frames]))
    x = x + bias_m[0] + rng.normal(0.0, jitter_m, len(frames))
    y = y + bias_m[1] + rng.normal(0.0, jitter_m, len(frames))
    lon, lat = local.to_wgs84(x, y)
    heading = np.array([f.heading_deg for f in frames]) + rng.normal(0.0, heading_deg, len(frames))
    return [
        replace(f, lon=float(lo), lat=float(la), heading_deg=float(h) % 360.0)
        for f, lo, la, h in zip(frames, lon, lat, heading, strict=True)
    ]


def store_world_roads(catalog: Catalog, world: World) -> None:
    """The world's road network in the catalog."""
    store_network(catalog, RoadNetwork(world.segments, source="world"), now=utcnow())


def calibration_of(drive_dir: Path) -> CameraCalibration:
    """The drive's camera as a device would send it."""
    return CameraCalibration.model_validate(
        json.loads((drive_dir / "calibration.json").read_text())
    )


def seed_drive(
    catalog: Catalog,
    store: ObjectStore,
    frames: list[Keyframe],
    *,
    device_id: str,
    sequence_id: str,
    camera: CameraCalibration | None,
    start: datetime | None = None,
    state: FrameState = FrameState.ACCEPTED,
    first_index: int = 0,
) -> SequenceKey:
    """Store the JPEGs and insert the frames in `state` (as ingest leaves them: accepted),
    with `camera` when given, numbered in their sequence from `first_index` (a later batch of
    the sequence starts further on)."""
    begin = start or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    now = utcnow()
    with catalog.session() as session:
        if session.get(Device, device_id) is None:
            session.add(Device(device_id=device_id, public_key="00" * 32, registered_at=now))
        camera_id = None
        if camera is not None:
            camera_id = camera.camera_id()
            if session.get(Camera, camera_id) is None:
                session.add(
                    Camera(
                        camera_id=camera_id,
                        calibration=camera.model_dump(mode="json"),
                        first_seen=now,
                    )
                )
        for index, frame in enumerate(frames, start=first_index):
            key = frame_object_key(device_id, frame.frame_id)
            store.put_bytes(key, frame.jpeg, content_type="image/jpeg")
            row = _frame_row(
                frame, index, key, device_id, sequence_id, camera_id, begin, now, camera
            )
            row.state = state
            session.add(row)
    return device_id, sequence_id


def _frame_row(
    frame: Keyframe,
    index: int,
    key: str,
    device_id: str,
    sequence_id: str,
    camera_id: str | None,
    begin: datetime,
    now: datetime,
    camera: CameraCalibration | None,
) -> Frame:
    values: dict[str, Any] = {
        "frame_id": frame.frame_id,
        "device_id": device_id,
        "batch_counter": 1,
        "object_key": key,
        "size_bytes": len(frame.jpeg),
        "sequence_id": sequence_id,
        "sequence_index": index,
        "capture_time": begin + timedelta(seconds=frame.t_s),
        "lat": frame.lat,
        "lon": frame.lon,
        "altitude_m": None,
        "heading_deg": frame.heading_deg,
        "speed_mps": frame.speed_mps,
        "hdop": 0.8,
        "travelled_m": frame.travelled_m,
        "model_versions": {},
        "camera_id": camera_id,
        "state": FrameState.ACCEPTED,
        "state_since": now,
        "received_at": now,
        "width": camera.width_px if camera else None,
        "height": camera.height_px if camera else None,
    }
    return Frame(**values)


def match(catalog: Catalog, keys: list[SequenceKey]) -> None:
    """Match the sequences with the real matcher over the catalog's network."""
    match_sequences(catalog, MapMatcher(load_network(catalog)), keys)


def pose_drive(
    ctx: TileContext,
    world: World,
    frames: list[Keyframe],
    drive_dir: Path,
    *,
    device_id: str = "bench",
    start: datetime | None = None,
    with_roads: bool = True,
) -> tuple[SequenceKey, PoseUpdate]:
    """The world's roads (unless the catalog has them: `with_roads` False) and one drive's
    keyframes (sequence "drive" of `device_id`, the drive's camera, from `start`) in the
    catalog, matched by the real matcher and posed as the workers pose."""
    if with_roads:
        store_world_roads(ctx.catalog, world)
    key = seed_drive(
        ctx.catalog,
        ctx.store,
        frames,
        device_id=device_id,
        sequence_id="drive",
        camera=calibration_of(drive_dir),
        start=start,
    )
    match(ctx.catalog, [key])
    return key, update_poses(ctx, [key])
