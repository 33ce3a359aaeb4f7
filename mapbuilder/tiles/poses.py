"""Poses of catalog frames for the tiles: the matched sequence's smoothed track, and the camera.

A frame gets a pose when it is accepted, matched onto a road segment close to its fix, and its
device sent a usable camera calibration; every other matched frame gets a recorded reason
(`Skip`), never a silent drop. `poses_for` takes an optional refinement (`PoseRefiner`): the
pipeline (`posing.update_poses`) passes `refiner.CatalogRefiner`, which replaces each sequence's
smoothed poses by poses refined by registering its overlapping views.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from ingest.catalog import Camera, Frame
from ingest.db import Catalog
from ingest.states import SequenceKey, accepted_of
from mapbuilder.camera import CalibrationError, PinholeCamera
from mapbuilder.catalog import FrameMatch
from mapbuilder.geo import LocalFrame
from mapbuilder.sequences import SequenceOptions, stitch
from mapbuilder.tiles.bev import FramePose

SMOOTHED = "smoothed"


@dataclass(frozen=True)
class CatalogPose:
    """A frame's pose for the tiles, its camera (by id) and where the pose came from."""

    frame_id: str
    pose: FramePose
    camera_id: str
    source: str = SMOOTHED


@dataclass(frozen=True)
class Skip:
    """A matched frame that gets no pose: a reason code and what to do about it."""

    frame_id: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Poses:
    """What `poses_for` found: the posed frames and the skipped ones, and per sequence a digest
    of the matched frames they came from (`matched_digest`)."""

    posed: list[CatalogPose]
    skipped: list[Skip]
    read: dict[SequenceKey, str] = field(default_factory=dict)


PoseRefiner = Callable[[Sequence[CatalogPose]], list[CatalogPose]]
"""Takes one sequence's poses in time order, returns them refined (same frames, same order)."""


@dataclass(frozen=True)
class _Row:
    frame_id: str
    lon: float
    lat: float
    time: datetime
    heading_deg: float
    camera_id: str | None
    calibration: dict[str, Any] | None
    segment_id: str | None
    distance_m: float | None
    width: int | None
    height: int | None


def poses_for(
    catalog: Catalog,
    keys: Sequence[SequenceKey],
    *,
    max_offroad_m: float,
    options: SequenceOptions | None = None,
    refine: PoseRefiner | None = None,
) -> Poses:
    """Poses of the accepted, matched frames of each (device, sequence), or why there is none."""
    posed: list[CatalogPose] = []
    skipped: list[Skip] = []
    read: dict[SequenceKey, str] = {}
    for key in keys:
        rows = _matched_rows(catalog, key)
        read[key] = _digest(rows)
        usable = []
        for row in rows:
            problem = _problem(row, max_offroad_m)
            if problem is None:
                usable.append(row)
            else:
                skipped.append(problem)
        found, unmoving = _smoothed(usable, options or SequenceOptions())
        skipped.extend(unmoving)
        posed.extend(refine(found) if refine and found else found)
    return Poses(posed, skipped, read)


def matched_digest(catalog: Catalog, key: SequenceKey) -> str:
    """A digest of what `poses_for` reads of a sequence (its accepted, matched frames): when it
    differs from `Poses.read`, the sequence changed after it was posed."""
    return _digest(_matched_rows(catalog, key))


def _digest(rows: Sequence[_Row]) -> str:
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _matched_rows(catalog: Catalog, key: SequenceKey) -> list[_Row]:
    """The accepted frames of a sequence that have a match, in sequence order."""
    with catalog.session() as session:
        rows = session.execute(
            select(
                Frame.frame_id,
                Frame.lon,
                Frame.lat,
                Frame.capture_time,
                Frame.heading_deg,
                Frame.camera_id,
                Camera.calibration,
                FrameMatch.segment_id,
                FrameMatch.distance_m,
                Frame.width,
                Frame.height,
            )
            .join(FrameMatch, FrameMatch.frame_id == Frame.frame_id)
            .outerjoin(Camera, Camera.camera_id == Frame.camera_id)
            .where(*accepted_of(key))
            .order_by(Frame.sequence_index)
        ).all()
    return [_Row(*row) for row in rows]


def _problem(row: _Row, max_offroad_m: float) -> Skip | None:
    """Why a frame cannot be placed in the tiles, or None when it can."""
    if row.camera_id is None or row.calibration is None:
        return Skip(
            row.frame_id,
            "no_calibration",
            "the device sent no camera calibration with this frame: "
            "calibrate the dashcam and send the calibration with its batches",
        )
    try:
        camera = PinholeCamera.from_calibration(row.calibration)
    except CalibrationError as exc:
        return Skip(row.frame_id, "bad_calibration", str(exc))
    if row.width is not None and (row.width, row.height) != (camera.width_px, camera.height_px):
        return Skip(
            row.frame_id,
            "bad_calibration",
            f"the frame is {row.width}x{row.height} px but its calibration is for "
            f"{camera.width_px}x{camera.height_px} px: send the calibration of this image size",
        )
    if row.segment_id is None:
        return Skip(
            row.frame_id,
            "off_network",
            "the fix matched no road segment: the frame is far outside the road network "
            "(import the roads of this area, or check the device's GNSS)",
        )
    if row.distance_m is not None and row.distance_m > max_offroad_m:
        return Skip(
            row.frame_id,
            "off_network",
            f"the fix is {row.distance_m:.1f} m from its road segment, more than "
            f"{max_offroad_m:g} m: its view would land off the road (check the device's GNSS)",
        )
    return None


def _smoothed(
    rows: Sequence[_Row], options: SequenceOptions
) -> tuple[list[CatalogPose], list[Skip]]:
    """Positions and headings of the smoothed track; frames of a part that never moved are skipped."""
    if not rows:
        return [], []
    lon = np.array([r.lon for r in rows], np.float64)
    lat = np.array([r.lat for r in rows], np.float64)
    time_s = np.array([r.time.timestamp() for r in rows], np.float64)
    frame = LocalFrame(float(np.median(lon)), float(np.median(lat)))
    given = np.array([r.heading_deg for r in rows], np.float64)
    posed, skipped = [], []
    for part in stitch(lon, lat, time_s, heading_deg=given, frame=frame, options=options):
        plon, plat = frame.to_wgs84(part.smooth_x_m, part.smooth_y_m)
        for k, index in enumerate(part.indices):
            row = rows[int(index)]
            heading = float(part.heading_deg[k])
            if not np.isfinite(heading):
                skipped.append(Skip(row.frame_id, "no_heading", _NO_HEADING))
                continue
            x, y = float(part.smooth_x_m[k]), float(part.smooth_y_m[k])
            true_heading = (heading + frame.grid_convergence_deg(x, y)) % 360.0
            pose = FramePose(
                round(float(plon[k]), 9),
                round(float(plat[k]), 9),
                round(true_heading, 4),
                time_s[index],
            )
            posed.append(CatalogPose(row.frame_id, pose, str(row.camera_id)))
    return posed, skipped


_NO_HEADING = (
    "the sequence never moved, so its direction is unknown: frames taken standing still cannot "
    "be placed (drive on; the next frames of the sequence will be)"
)
