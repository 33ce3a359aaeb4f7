"""Builders for rewards tests: a small road network, devices with fixed keys, and accepted,
matched frames written straight into the catalog (the ingest stages are tested elsewhere)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ingest.catalog import Batch, Device, Frame, FrameState
from ingest.db import Catalog
from ingest.protocol import public_key_hex
from mapbuilder.catalog import FrameMatch, RoadSegmentRow
from rewards.epochs import Epoch
from tests.ingest_helpers import FakeDevice

EPOCH = Epoch.parse("2026-11-23")
DAY = timedelta(days=1)
CLOSE_AT = EPOCH.end + 3 * DAY  # after the 48 h grace period
# (segment id, length in metres, road class)
SEGMENTS = (("seg-a", 100.0, "primary"), ("seg-b", 45.0, "residential"), ("seg-c", 60.0, "service"))


def fixed_device(number: int) -> FakeDevice:
    """A device whose key (and so id) is the same in every run."""
    return FakeDevice(key=Ed25519PrivateKey.from_private_bytes(bytes([number]) * 32))


@dataclass(frozen=True)
class Capture:
    """One frame: who, where on which segment, when, how well, and where ingest left it."""

    device: int
    segment: str
    offset_m: float
    at: datetime
    direction: str = "forward"
    distance_m: float = 1.0
    hdop: float | None = 1.0
    state: FrameState = FrameState.ACCEPTED
    tag: str = ""

    @property
    def frame_id(self) -> str:
        """A stable id made from the capture itself."""
        text = f"{self.device}/{self.segment}/{self.direction}/{self.offset_m}/{self.at.isoformat()}/{self.tag}"
        return hashlib.sha256(text.encode()).hexdigest()


def store_segments(catalog: Catalog, now: datetime) -> None:
    """The test network: three straight segments going east near Helsinki."""
    with catalog.session() as session:
        for i, (segment_id, length, road_class) in enumerate(SEGMENTS):
            lat = 60.17 + i * 0.001
            end = 24.94 + length / 55_500
            session.add(
                RoadSegmentRow(
                    segment_id=segment_id,
                    source_id=i,
                    road_class=road_class,
                    oneway=False,
                    lanes=2,
                    width_m=6.0,
                    speed_kmh=30.0,
                    start_node=2 * i,
                    end_node=2 * i + 1,
                    length_m=length,
                    lonlat=json.dumps([[24.94, lat], [end, lat]]),
                    min_lon=24.94,
                    min_lat=lat,
                    max_lon=end,
                    max_lat=lat,
                    imported_at=now,
                    retired_at=None,
                )
            )


def register(catalog: Catalog, numbers: Sequence[int], now: datetime) -> dict[int, str]:
    """Device rows for the given fixed devices; their ids."""
    ids = {}
    with catalog.session() as session:
        for number in sorted(set(numbers)):
            device = fixed_device(number)
            key = public_key_hex(device.key.public_key())
            session.add(
                Device(
                    device_id=device.device_id,
                    public_key=key,
                    registered_at=now,
                    revoked_at=None,
                    last_counter=1,
                )
            )
            ids[number] = device.device_id
    return ids


def _frame(capture: Capture, device_id: str, received: datetime) -> Frame:
    return Frame(
        frame_id=capture.frame_id,
        device_id=device_id,
        batch_counter=1,
        object_key=f"frames/{device_id}/{capture.frame_id}.jpg",
        size_bytes=1000,
        sequence_id="s",
        sequence_index=0,
        capture_time=capture.at,
        lat=60.17,
        lon=24.94,
        altitude_m=None,
        heading_deg=90.0,
        speed_mps=10.0,
        hdop=capture.hdop,
        model_versions={},
        state=capture.state,
        state_since=received,
        attempts=0,
        received_at=received,
    )


def seed_catalog(
    catalog: Catalog, captures: Sequence[Capture], *, now: datetime | None = None
) -> dict[int, str]:
    """Segments, devices, one batch per device and the captures (matched), in the order given;
    the device ids by number."""
    moment = now or EPOCH.start - 30 * DAY
    store_segments(catalog, moment)
    ids = register(catalog, [c.device for c in captures], moment)
    with catalog.session() as session:
        for number, device_id in sorted(ids.items()):
            count = sum(c.device == number for c in captures)
            session.add(
                Batch(
                    device_id=device_id,
                    counter=1,
                    manifest_sha256="0" * 64,
                    signed_manifest="{}",
                    frame_count=count,
                    committed_at=moment,
                )
            )
    with catalog.session() as session:
        for capture in captures:
            session.add(_frame(capture, ids[capture.device], capture.at + timedelta(minutes=10)))
    add_matches(catalog, captures)
    return ids


def add_matches(catalog: Catalog, captures: Sequence[Capture]) -> None:
    """Where each capture lies (after its frame row exists)."""
    with catalog.session() as session:
        for capture in captures:
            session.add(_match(capture.frame_id, capture, capture.at + timedelta(minutes=20)))


def match_along(catalog: Catalog, frame_ids: Sequence[str], segment: str, now: datetime) -> None:
    """Match existing frames onto `segment`, 4 m apart (as the match stage would)."""
    with catalog.session() as session:
        for i, frame_id in enumerate(frame_ids):
            session.add(_match(frame_id, Capture(0, segment, 4.0 * (i % 20), now), now))


def _match(frame_id: str, capture: Capture, at: datetime) -> FrameMatch:
    return FrameMatch(
        frame_id=frame_id,
        segment_id=capture.segment,
        direction=capture.direction,
        offset_m=capture.offset_m,
        distance_m=capture.distance_m,
        matched_at=at,
    )


def drive(
    device: int,
    segment: str,
    start: datetime,
    *,
    length_m: float,
    step_m: float = 4.0,
    **extra: object,
) -> list[Capture]:
    """A pass along a segment: one frame every `step_m`, one second apart."""
    count = int(length_m // step_m)
    return [
        Capture(device, segment, i * step_m, start + timedelta(seconds=i), **extra)  # type: ignore[arg-type]
        for i in range(count)
    ]


def week(start_day: float = 1.0) -> list[Capture]:
    """Devices 1 and 2 share segment a, 2 also drives c (seen by 1 before the epoch), 3's frames
    on b were quarantined."""
    start = EPOCH.start + start_day * DAY
    return [
        *drive(1, "seg-a", start, length_m=100),
        *drive(2, "seg-a", start + DAY, length_m=100),
        *drive(3, "seg-b", start, length_m=45, state=FrameState.QUARANTINED),
        *drive(1, "seg-c", EPOCH.start - 3 * DAY, length_m=60, tag="before"),
        *drive(2, "seg-c", start + 2 * DAY, length_m=60),
    ]
