"""A simulated drive put into a catalog as ingest leaves it: keyframes every 4 m as stored JPEGs,
accepted frame rows with the drive's camera, the world's roads, and matches from the real matcher."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2

from ingest.catalog import Camera, Device, Frame, FrameState, utcnow
from ingest.db import Catalog
from ingest.protocol import CameraCalibration, frame_object_key
from ingest.states import SequenceKey
from ingest.storage import ObjectStore
from mapbuilder.catalog import load_network, store_network
from mapbuilder.match_stage import match_sequences
from mapbuilder.matching.matcher import MapMatcher
from mapbuilder.roads.network import RoadNetwork
from roadswarm.sim.world import World

SPACING_M = 4.0


@dataclass(frozen=True)
class Keyframe:
    """A keyframe of a simulated drive: its JPEG and its true pose."""

    jpeg: bytes
    lon: float
    lat: float
    heading_deg: float
    t_s: float

    @property
    def frame_id(self) -> str:
        """The sha256 of the JPEG, as the edge names frames."""
        return hashlib.sha256(self.jpeg).hexdigest()


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
        chosen.append(Keyframe(jpeg.tobytes(), frame["lon"], frame["lat"], heading, frame["t_s"]))
    capture.release()
    return chosen


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
) -> SequenceKey:
    """Store the JPEGs and insert the frames as accepted (with `camera`, when given)."""
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
        for index, frame in enumerate(frames):
            key = frame_object_key(device_id, frame.frame_id)
            store.put_bytes(key, frame.jpeg, content_type="image/jpeg")
            session.add(
                _frame_row(frame, index, key, device_id, sequence_id, camera_id, begin, now, camera)
            )
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
        "speed_mps": 10.0,
        "hdop": 0.8,
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
