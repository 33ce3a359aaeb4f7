"""Simulated drivers for the soak test: each a dashcam with its own key that drives simulated
routes one after another and, every few seconds, uploads the keyframes captured since its last
batch through the real ingest API with the edge's own client (tickets, uploads, signed commit).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.client import IngestClient
from edge.identity import Identity
from ingest.catalog import utcnow
from ingest.protocol import BatchManifest, CameraCalibration, FrameEntry, UploadItem, sign
from roadswarm.sim.drive import DriveOptions, simulate_drive
from roadswarm.sim.world import World
from tests.tile_helpers import Keyframe, calibration_of, keyframes

# 5 fps is enough for a keyframe every 4 m at city speeds and renders three times faster than
# the suite's 15 fps drive.
ROUTE_FPS = 5.0
FIRST_SEED = 40
MODEL_VERSIONS = {"face": "centerface@soak", "plate": "platedet@soak"}


@dataclass(frozen=True)
class Route:
    """One simulated drive's keyframes and camera."""

    frames: list[Keyframe]
    camera: CameraCalibration

    @property
    def duration_s(self) -> float:
        """Seconds from the first keyframe to the last."""
        return self.frames[-1].t_s - self.frames[0].t_s


def simulate_routes(
    world: World, folder: Path, *, drivers: int, minutes: float, route_minutes: float
) -> list[Route]:
    """Enough drives of `route_minutes` for each driver to drive `minutes`, each with its own
    seed (so its own images), at 640x360 through `world`; cached in `folder`."""
    laps = math.ceil(minutes / route_minutes)
    routes = []
    for seed in range(FIRST_SEED, FIRST_SEED + drivers * laps):
        out = folder / f"route-{seed}-{route_minutes:g}min"
        if not (out / "truth.json").exists():
            options = DriveOptions(
                minutes=route_minutes, seed=seed, fps=ROUTE_FPS, width_px=640, height_px=360
            )
            simulate_drive(world, out, options)
        routes.append(Route(keyframes(world, out), calibration_of(out)))
    return routes


@dataclass
class DriverLog:
    """What a driver sent: every frame id, batch count and commit times (monotonic seconds)."""

    frame_ids: list[str] = field(default_factory=list)
    batches: int = 0
    commit_times: list[float] = field(default_factory=list)
    error: BaseException | None = None


class Driver(threading.Thread):
    """A dashcam streaming its routes: keyframes become due at their capture offset divided by
    `speedup`, and every `batch_s` the due ones are uploaded and committed as one batch."""

    def __init__(
        self, api_url: str, routes: list[Route], *, batch_s: float, speedup: float
    ) -> None:
        super().__init__(daemon=True)
        self.api_url = api_url
        self.routes = routes
        self.batch_s = batch_s
        self.speedup = speedup
        self.log = DriverLog()
        self._counter = 0

    def run(self) -> None:
        """Drive every route; an error is kept in the log (the test reports it)."""
        client = IngestClient(self.api_url, Identity(Ed25519PrivateKey.generate()))
        try:
            client.register()
            for number, route in enumerate(self.routes):
                self._drive(client, route, f"soak-{number}")
        except Exception as exc:  # reported by the test with the driver's other figures
            self.log.error = exc
        finally:
            client.close()

    def _drive(self, client: IngestClient, route: Route, sequence_id: str) -> None:
        began = time.monotonic()
        # Dated on the drive's own clock, its last frame now: a speed-up streams a recorded drive
        # faster (a device catching up), never with compressed times (they would look like teleports).
        captured_from = utcnow() - timedelta(seconds=route.duration_s)
        t0 = route.frames[0].t_s
        sent = 0
        while sent < len(route.frames):
            time.sleep(self.batch_s)
            elapsed = (time.monotonic() - began) * self.speedup
            due = sent
            while due < len(route.frames) and route.frames[due].t_s - t0 <= elapsed:
                due += 1
            if due > sent:
                self._send(client, route, sequence_id, range(sent, due), captured_from)
                sent = due

    def _send(
        self,
        client: IngestClient,
        route: Route,
        sequence_id: str,
        indexes: range,
        captured_from: datetime,
    ) -> None:
        frames = [route.frames[i] for i in indexes]
        tickets = client.tickets(
            [UploadItem(frame_id=f.frame_id, size_bytes=len(f.jpeg)) for f in frames]
        )
        by_id = {f.frame_id: f for f in frames}
        for ticket in tickets:
            if not ticket.already_uploaded:
                client.upload(ticket, by_id[ticket.frame_id].jpeg)
        camera_id = route.camera.camera_id()
        t0 = route.frames[0].t_s
        entries = [
            _entry(
                frame,
                index,
                sequence_id,
                camera_id,
                captured_from + timedelta(seconds=frame.t_s - t0),
            )
            for index, frame in zip(indexes, frames, strict=True)
        ]
        self._counter += 1
        manifest = BatchManifest(
            device_id=client.identity.device_id,
            counter=self._counter,
            created_at=utcnow(),
            frames=entries,
            cameras={camera_id: route.camera},
        )
        receipt = client.commit(sign(manifest, client.identity.private_key))
        if receipt.already_committed or receipt.frames != len(entries):
            msg = f"batch {self._counter} of {client.identity.device_id[:12]}: receipt {receipt}"
            raise AssertionError(msg)
        self.log.frame_ids.extend(e.frame_id for e in entries)
        self.log.batches += 1
        self.log.commit_times.append(time.monotonic())


def _entry(
    frame: Keyframe, index: int, sequence_id: str, camera_id: str, captured: datetime
) -> FrameEntry:
    return FrameEntry(
        frame_id=frame.frame_id,
        size_bytes=len(frame.jpeg),
        capture_time=captured,
        lat=frame.lat,
        lon=frame.lon,
        heading_deg=frame.heading_deg % 360.0,
        speed_mps=frame.speed_mps,
        hdop=0.8,
        sequence_id=sequence_id,
        index=index,
        model_versions=MODEL_VERSIONS,
        camera_id=camera_id,
    )
