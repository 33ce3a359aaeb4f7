"""The map a sequence is aligned to: frames of sequences that reached the catalog before it and
whose refined poses are stored.

Sequences take one order, by when their first frame was received (device and sequence ids
breaking ties; any frame, so a batch validated late cannot move a sequence ahead), and a
sequence is aligned only to sequences before it: the map as it stood when the drive arrived.
So the dependence runs one way: a drive never moves one that was there before it (the tiles
built from that stay where they are, also when a device uploads last week's drive today), and
a sequence posed again with the same frames finds the same map, so the same digest, and keeps
its stored poses. Of the map frames within reach, only the few nearest to each pose that look
about the same way are kept: registration pairs a frame with its nearest, and on a street
driven a hundred times the map a sequence reads (and the digest it is part of) stays small.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import and_, func, not_, select, tuple_

from ingest.catalog import Camera, Frame, FrameState
from ingest.db import Catalog
from ingest.states import SequenceKey
from mapbuilder.tiles.bev import FramePose
from mapbuilder.tiles.catalog import FramePoseRow
from mapbuilder.tiles.poses import CatalogPose

METRES_PER_DEGREE = 111_320.0
# Map frames are looked up around this many consecutive poses at a time (one bounding box each),
# so a long sequence does not read the whole city between its ends.
QUERY_CHUNK = 64
KEYS_PER_QUERY = 200
SequenceOrder = tuple[float, str, str]  # when it reached the catalog (Unix seconds), its ids
T = TypeVar("T")
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class MapFrame:
    """A frame of another sequence whose refined pose is in the map: its sequence, where its
    JPEG is, its camera (with calibration) and its stored pose."""

    key: SequenceKey
    frame_id: str
    object_key: str
    camera_id: str
    calibration: dict[str, Any]
    pose: FramePose


def sequence_order(
    catalog: Catalog, keys: Collection[SequenceKey]
) -> dict[SequenceKey, SequenceOrder]:
    """Where each sequence stands in the map's order (when its first frame was received);
    sequences without frames are left out."""
    order: dict[SequenceKey, SequenceOrder] = {}
    with catalog.session() as session:
        for chunk in _chunks(sorted(keys), KEYS_PER_QUERY):
            rows = session.execute(
                select(Frame.device_id, Frame.sequence_id, func.min(Frame.received_at))
                .where(tuple_(Frame.device_id, Frame.sequence_id).in_(chunk))
                .group_by(Frame.device_id, Frame.sequence_id)
            )
            for device_id, sequence_id, arrived in rows:
                order[(device_id, sequence_id)] = (arrived.timestamp(), device_id, sequence_id)
    return order


def stored_map_frames(
    catalog: Catalog, key: SequenceKey, found: Sequence[CatalogPose], reach_m: float, source: str
) -> list[MapFrame]:
    """Accepted frames of other sequences than `key` posed by `source`, in the bounding boxes of
    these poses (a chunk at a time) widened by `reach_m`."""
    near: dict[str, MapFrame] = {}
    for chunk in _chunks(found, QUERY_CHUNK):
        for frame in _stored_in_box(catalog, key, chunk, reach_m, source):
            near[frame.frame_id] = frame
    return list(near.values())


def _stored_in_box(
    catalog: Catalog, key: SequenceKey, chunk: Sequence[CatalogPose], reach_m: float, source: str
) -> list[MapFrame]:
    """`stored_map_frames` for one chunk of poses."""
    west, south, east, north = _box([p.pose for p in chunk], reach_m)
    with catalog.session() as session:
        rows = session.execute(
            select(
                Frame.device_id,
                Frame.sequence_id,
                FramePoseRow.frame_id,
                Frame.object_key,
                FramePoseRow.camera_id,
                Camera.calibration,
                FramePoseRow.lon,
                FramePoseRow.lat,
                FramePoseRow.heading_deg,
                Frame.capture_time,
            )
            .join(Frame, Frame.frame_id == FramePoseRow.frame_id)
            .join(Camera, Camera.camera_id == FramePoseRow.camera_id)
            .where(
                FramePoseRow.source == source,
                Frame.state == FrameState.ACCEPTED,
                FramePoseRow.lat.between(south, north),
                FramePoseRow.lon.between(west, east),
                not_(and_(Frame.device_id == key[0], Frame.sequence_id == key[1])),
            )
        ).all()
    return [
        MapFrame(
            (device, sequence),
            frame_id,
            obj,
            camera_id,
            calibration,
            FramePose(lo, la, h, t.timestamp()),
        )
        for device, sequence, frame_id, obj, camera_id, calibration, lo, la, h, t in rows
    ]


def nearest_per_pose(
    frames: Sequence[MapFrame],
    poses: Sequence[CatalogPose],
    *,
    reach_m: float,
    max_angle_deg: float,
    per_pose: int,
) -> list[MapFrame]:
    """For each pose, its `per_pose` nearest map frames within `reach_m` whose heading is within
    `max_angle_deg` of its own (equirectangular metres); all of them, by frame id."""
    if not frames or not poses:
        return []
    frames = sorted(frames, key=lambda m: m.frame_id)  # ties go to the same frame every time
    lon = np.array([m.pose.lon for m in frames])
    lat = np.array([m.pose.lat for m in frames])
    heading = np.radians([m.pose.heading_deg for m in frames])
    min_cos = math.cos(math.radians(max_angle_deg))
    kept: set[int] = set()
    for chunk in _chunks(poses, QUERY_CHUNK):
        at = [p.pose for p in chunk]
        west, south, east, north = _box(at, reach_m)
        inside = np.flatnonzero((lon >= west) & (lon <= east) & (lat >= south) & (lat <= north))
        if inside.size == 0:
            continue
        distance = _distances(lon[inside], lat[inside], at)
        alike = np.cos(heading[inside, None] - np.radians([p.heading_deg for p in at]))
        distance[~((distance <= reach_m) & (alike >= min_cos))] = np.inf  # NaN is out too
        nearest = np.argsort(distance, axis=0, kind="stable")[:per_pose]
        reached = np.isfinite(np.take_along_axis(distance, nearest, axis=0))
        kept.update(inside[nearest[reached]].tolist())
    return [frames[k] for k in sorted(kept)]


def in_box(
    frames: Iterable[MapFrame], poses: Sequence[CatalogPose], reach_m: float
) -> list[MapFrame]:
    """The map frames inside the bounding box of these poses widened by `reach_m`: a cheap
    first cut before `nearest_per_pose`."""
    if not poses:
        return []
    west, south, east, north = _box([p.pose for p in poses], reach_m)
    return [m for m in frames if west <= m.pose.lon <= east and south <= m.pose.lat <= north]


def sequences_near(
    catalog: Catalog, positions: Sequence[FramePose], reach_m: float
) -> set[SequenceKey]:
    """Sequences with a stored pose (any source) within `reach_m` of any of these positions."""
    found: set[SequenceKey] = set()
    for chunk in _chunks(positions, QUERY_CHUNK):
        west, south, east, north = _box(chunk, reach_m)
        with catalog.session() as session:
            rows = session.execute(
                select(Frame.device_id, Frame.sequence_id, FramePoseRow.lon, FramePoseRow.lat)
                .join(Frame, Frame.frame_id == FramePoseRow.frame_id)
                .where(FramePoseRow.lat.between(south, north), FramePoseRow.lon.between(west, east))
            ).all()
        if rows:
            lon = np.array([row[2] for row in rows])
            lat = np.array([row[3] for row in rows])
            near = _distances(lon, lat, chunk).min(axis=1)
            found.update(
                (row[0], row[1])
                for row, metres in zip(rows, near, strict=True)
                if metres <= reach_m
            )
    return found


def _box(poses: Sequence[FramePose], reach_m: float) -> tuple[float, float, float, float]:
    """West, south, east, north of these poses, widened by `reach_m`."""
    lon = [p.lon for p in poses]
    lat = [p.lat for p in poses]
    pad_lat = reach_m / METRES_PER_DEGREE
    pad_lon = pad_lat / max(math.cos(math.radians(max(map(abs, lat)))), 0.01)
    return min(lon) - pad_lon, min(lat) - pad_lat, max(lon) + pad_lon, max(lat) + pad_lat


def _distances(lon: FloatArray, lat: FloatArray, poses: Sequence[FramePose]) -> FloatArray:
    """Metres from each position (rows) to each of these nearby poses (columns),
    equirectangular."""
    plon = np.array([p.lon for p in poses])
    plat = np.array([p.lat for p in poses])
    east = (lon[:, None] - plon) * np.cos(np.radians(plat)) * METRES_PER_DEGREE
    return np.asarray(np.hypot(east, (lat[:, None] - plat) * METRES_PER_DEGREE), np.float64)


def metres_apart(a: FramePose, b: FramePose) -> float:
    """Metres between two nearby poses (equirectangular)."""
    east = (b.lon - a.lon) * math.cos(math.radians(a.lat)) * METRES_PER_DEGREE
    return math.hypot(east, (b.lat - a.lat) * METRES_PER_DEGREE)


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
