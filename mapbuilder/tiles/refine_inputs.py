"""What refining one sequence's poses reads from the catalog, and the digest of it.

Per frame: where its JPEG is, the receiver's HDOP and Doppler speed, the device's odometry
(`travelled_m`, where sent) and the road segment it was matched to; the matched segments' shapes
(for lane lines); each camera's calibration; and how the sequence was refined last time, with the
poses that came out. The digest of all of it (with the refinement's settings) decides whether a
sequence must be refined again: the same inputs give the stored poses back, so a sequence is
refined once per change, whichever task asks first.

The frames of the map a sequence is aligned to (`map_frames`) are part of its digest too.

The odometry is the distance driven since the trip began, so it must not decrease along the
sequence, nor imply a speed no car drives: a sequence whose odometry does either is refined
without it (steps from the keyframes' speeds, as for a device that sends none), and the reason
is recorded with the refinement; its frames are kept.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import astuple, dataclass, replace
from typing import Any

from sqlalchemy import select

from ingest.catalog import Camera, Frame
from ingest.db import Catalog
from ingest.states import SequenceKey
from mapbuilder.catalog import FrameMatch, RoadSegmentRow
from mapbuilder.tiles.bev import FramePose
from mapbuilder.tiles.catalog import FramePoseRow, PoseRefinement
from mapbuilder.tiles.constraints import LaneLine
from mapbuilder.tiles.lanes import MatchedRoad
from mapbuilder.tiles.map_frames import MapFrame
from mapbuilder.tiles.poses import CatalogPose

# Keyframes further apart than this in time may hold a stop: the mean of the two speeds says
# nothing about the distance between them then, so that step is left unknown.
MAX_STEP_S = 2.0
# Odometry implying a faster step than this between keyframes is broken (ingest refuses fixes
# that imply it too).
MAX_ODOMETRY_SPEED_MPS = 70.0
ODOMETRY_USED = "used"
ODOMETRY_BACKWARDS = "odometry_backwards"
ODOMETRY_TOO_FAST = "odometry_too_fast"


@dataclass(frozen=True)
class FrameInputs:
    """One frame's object, the receiver's fix (position, HDOP, speed), the device's odometry
    (its place in the sequence and metres along the trip), and its match."""

    object_key: str
    lon: float
    lat: float
    heading_deg: float
    hdop: float | None
    speed_mps: float | None
    sequence_index: int
    travelled_m: float | None
    segment_id: str | None
    direction: str | None


@dataclass(frozen=True)
class Odometry:
    """The distance driven up to each frame (in the order of the poses) that refinement may use,
    None where unknown, and how: `status` "used", None (the device sent none) or why it was
    ignored, with `detail`."""

    travelled_m: list[float | None]
    status: str | None
    detail: str = ""


@dataclass(frozen=True)
class SequenceInputs:
    """What refining a sequence reads: its key, its frames (in the order of the poses), the
    roads they were matched to (in order of first match) and the cameras' calibrations."""

    key: SequenceKey
    frames: list[FrameInputs]
    roads: list[MatchedRoad]
    calibrations: dict[str, dict[str, Any]]


def read_inputs(catalog: Catalog, found: Sequence[CatalogPose]) -> SequenceInputs:
    """The inputs of the sequence these poses (one sequence's, in order) belong to."""
    with catalog.session() as session:
        key = session.execute(
            select(Frame.device_id, Frame.sequence_id).where(Frame.frame_id == found[0].frame_id)
        ).one()
        device_id, sequence_id = str(key[0]), str(key[1])
        rows = session.execute(
            select(
                Frame.frame_id,
                Frame.object_key,
                Frame.lon,
                Frame.lat,
                Frame.heading_deg,
                Frame.hdop,
                Frame.speed_mps,
                Frame.sequence_index,
                Frame.travelled_m,
                FrameMatch.segment_id,
                FrameMatch.direction,
            )
            .outerjoin(FrameMatch, FrameMatch.frame_id == Frame.frame_id)
            .where(Frame.device_id == device_id, Frame.sequence_id == sequence_id)
        ).all()
        by_id = {row[0]: FrameInputs(*row[1:]) for row in rows}
        frames = [by_id[p.frame_id] for p in found]
        roads = _roads(session, frames)
        cameras = sorted({p.camera_id for p in found})
        calibrations: dict[str, dict[str, Any]] = {
            camera_id: calibration
            for camera_id, calibration in session.execute(
                select(Camera.camera_id, Camera.calibration).where(Camera.camera_id.in_(cameras))
            )
        }
    return SequenceInputs((device_id, sequence_id), frames, roads, calibrations)


def _roads(session: Any, frames: list[FrameInputs]) -> list[MatchedRoad]:
    """The matched (segment, direction) pairs, in order of first match, with their shapes
    (retired segments too: the frames were matched to them)."""
    pairs = list(
        dict.fromkeys((f.segment_id, f.direction) for f in frames if f.segment_id and f.direction)
    )
    ids = sorted({segment for segment, _ in pairs})
    rows = {
        row.segment_id: row
        for row in session.scalars(select(RoadSegmentRow).where(RoadSegmentRow.segment_id.in_(ids)))
    }
    roads = []
    for segment_id, direction in pairs:
        row = rows.get(segment_id)
        if row is None:
            continue
        lonlat = [(float(lon), float(lat)) for lon, lat in json.loads(row.lonlat)]
        roads.append(MatchedRoad(segment_id, direction, lonlat, row.oneway, row.lanes, row.width_m))
    return roads


def steps_m(found: Sequence[CatalogPose], inputs: SequenceInputs) -> list[float | None]:
    """Distance driven from the previous frame by the mean of the two Doppler speeds, where
    both are known and the frames are at most `MAX_STEP_S` apart; None elsewhere."""
    steps: list[float | None] = [None]
    for k in range(1, len(found)):
        dt = found[k].pose.time_s - found[k - 1].pose.time_s
        before, after = inputs.frames[k - 1].speed_mps, inputs.frames[k].speed_mps
        if before is None or after is None or not 0 < dt <= MAX_STEP_S:
            steps.append(None)
        else:
            steps.append(dt * (before + after) / 2)
    return steps


def odometry(found: Sequence[CatalogPose], inputs: SequenceInputs) -> Odometry:
    """The device's odometry of these frames, or none with the reason it cannot be trusted:
    it goes backwards with increasing sequence index, or implies a step faster than
    `MAX_ODOMETRY_SPEED_MPS`."""
    given = [f.travelled_m for f in inputs.frames]
    if all(value is None for value in given):
        return Odometry(given, None)
    problem = _backwards(inputs.frames) or _too_fast(found, given)
    if problem is not None:
        status, detail = problem
        return Odometry([None] * len(given), status, detail)
    return Odometry(given, ODOMETRY_USED)


def _backwards(frames: Sequence[FrameInputs]) -> tuple[str, str] | None:
    """Where the odometry decreases from one frame to the next in sequence order, if it does."""
    known = sorted((f.sequence_index, f.travelled_m) for f in frames if f.travelled_m is not None)
    for (index_a, metres_a), (index_b, metres_b) in itertools.pairwise(known):
        if metres_b < metres_a:
            detail = (
                f"odometry ignored: travelled_m goes back from {metres_a:g} m at index "
                f"{index_a} to {metres_b:g} m at index {index_b} (the device's distance "
                "counter was reset or is broken); steps taken from the keyframes' speeds"
            )
            return ODOMETRY_BACKWARDS, detail
    return None


def _too_fast(
    found: Sequence[CatalogPose], given: Sequence[float | None]
) -> tuple[str, str] | None:
    """Where the odometry implies a step faster than any car drives, if it does."""
    known = [(p.pose.time_s, m) for p, m in zip(found, given, strict=True) if m is not None]
    for (t_a, metres_a), (t_b, metres_b) in itertools.pairwise(known):
        if metres_b - metres_a > MAX_ODOMETRY_SPEED_MPS * max(t_b - t_a, 0.0):
            detail = (
                f"odometry ignored: travelled_m grows by {metres_b - metres_a:g} m in "
                f"{t_b - t_a:g} s (more than {MAX_ODOMETRY_SPEED_MPS:g} m/s); steps taken "
                "from the keyframes' speeds"
            )
            return ODOMETRY_TOO_FAST, detail
    return None


def inputs_sha256(
    found: Sequence[CatalogPose],
    inputs: SequenceInputs,
    lanes: Sequence[LaneLine],
    settings: str,
    near: Sequence[MapFrame] = (),
) -> str:
    """The sha256 of everything a refinement of the sequence reads, `settings` included (the
    refinement's settings and version, as text), and the map frames `near` it."""
    payload = {
        "map": [[m.frame_id, m.camera_id, m.calibration, *astuple(m.pose)] for m in near],
        "settings": settings,
        "frames": [
            [p.frame_id, p.camera_id, *astuple(p.pose), *astuple(f)]
            for p, f in zip(found, inputs.frames, strict=True)
        ],
        "lanes": [astuple(line) for line in lanes],
        "cameras": inputs.calibrations,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def last_refinement(catalog: Catalog, key: SequenceKey) -> PoseRefinement | None:
    """How the sequence was refined last, if it was."""
    with catalog.session() as session:
        row = session.get(PoseRefinement, key)
        if row is not None:
            session.expunge(row)
        return row


def stored_poses(
    catalog: Catalog, key: SequenceKey, found: Sequence[CatalogPose], source: str
) -> list[CatalogPose] | None:
    """The poses stored from `source` for these frames of the sequence `key`, in their order;
    None unless every frame has one."""
    device_id, sequence_id = key
    with catalog.session() as session:
        rows = session.execute(
            select(
                FramePoseRow.frame_id, FramePoseRow.lon, FramePoseRow.lat, FramePoseRow.heading_deg
            )
            .join(Frame, Frame.frame_id == FramePoseRow.frame_id)
            .where(
                Frame.device_id == device_id,
                Frame.sequence_id == sequence_id,
                FramePoseRow.source == source,
            )
        ).all()
    stored = {frame_id: (lon, lat, heading) for frame_id, lon, lat, heading in rows}
    if any(p.frame_id not in stored for p in found):
        return None
    return [
        replace(p, pose=FramePose(*stored[p.frame_id], p.pose.time_s), source=source) for p in found
    ]
