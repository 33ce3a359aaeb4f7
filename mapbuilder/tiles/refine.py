"""Pose refinement beyond raw GNSS: `refine_poses` for one sequence, `refine_sequences` for
several drives over the same roads.

1. Every frame's ground is resampled onto a camera-fixed grid (`register.GroundViewer`) and
   registered against the next frames of its sequence, starting from the GNSS step; pairs that
   pass the gates become edges of the pose graph (`constraints.sequence_edges`).
2. Lane lines the map matcher implies (a matched segment's centreline offset to the lane the
   vehicle drove in) anchor frames sideways where one lies within `lane_search_m` of the GNSS
   position and runs within `lane_max_angle_deg` of its heading. Where the direction has several
   lanes, a frame is held only to the lane the solid lines painted beside it put it in
   (`markings.solid_lines`, `constraints.lane_agreement`).
3. The pose graph (`posegraph.solve`) fuses registration, GNSS with a drifting bias, heading,
   the distance driven and the lanes; positions go back to WGS84. Where a sequence comes back
   to ground it saw many frames before (round a block, back from a dead end), those frames are
   registered with each other (`constraints.seen_before`) and the graph is solved again, so
   the two visits agree instead of each keeping its own GNSS error.
4. With several sequences, each is refined alone first; then frames of later sequences are
   registered with the nearest frames of earlier ones (`constraints.nearest_earlier`,
   `register_pairs`) and all are solved together, so the drives agree with each other and
   their GNSS biases average out.
5. Frames of other sequences already in the map (`anchors.Anchor`, poses held fixed) pull the
   drives onto the map: each frame is registered with the nearest one
   (`anchors.anchor_constraints`) and all is solved once more.

One drive cannot remove its own correlated GNSS bias along the road: registration fixes the
track's shape to centimetres, lanes fix it sideways, a turn (where the crossing road is
sideways) and the distance driven carry that along; on a long straight road only GNSS, or
other drives, say where along it the imagery belongs.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from mapbuilder.camera import CameraLike
from mapbuilder.errors import MapError
from mapbuilder.geo import LocalFrame
from mapbuilder.tiles.anchors import Anchor, anchor_constraints
from mapbuilder.tiles.bev import FramePose
from mapbuilder.tiles.build import PosedFrame
from mapbuilder.tiles.constraints import (
    Gates,
    LaneLine,
    LinesKey,
    RegistrationMemo,
    SolidLineSight,
    lane_constraints,
    nearest_earlier,
    register_pairs,
    seen_before,
    sequence_edges,
)
from mapbuilder.tiles.markings import MarkingSettings, SolidLines, solid_lines
from mapbuilder.tiles.posegraph import (
    NO_ANCHORS,
    Anchored,
    Edges,
    GraphSettings,
    Observed,
    solve,
)
from mapbuilder.tiles.register import GroundGrid, GroundView, GroundViewer

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
__all__ = [
    "Anchor",
    "Drive",
    "LaneLine",
    "RefineSettings",
    "RefinedPoses",
    "refine_poses",
    "refine_sequences",
]


class PoseRefinementError(MapError):
    """A sequence that cannot be refined: too few frames, times that do not increase, or
    per-frame values that do not match the frames."""


@dataclass(frozen=True)
class RefineSettings:
    """How frames are registered and lanes found; the graph's weights are in `graph`."""

    grid: GroundGrid = field(default_factory=GroundGrid)
    graph: GraphSettings = field(default_factory=GraphSettings)
    gates: Gates = field(default_factory=Gates)
    lane_search_m: float = 6.0
    lane_max_angle_deg: float = 30.0
    # A car turning off a road leaves its lane metres before the junction's node: the node lies
    # in the middle of the crossing road, and the turn (no tighter than a turning circle)
    # begins before that road's edge. Straight-on lanes are joined, so this is cut only where
    # the car turned.
    lane_end_margin_m: float = 6.0
    markings: MarkingSettings = field(default_factory=MarkingSettings)
    # Frames further apart in time are not linked by motion or GNSS bias (a stitched sequence
    # may hold a pause in which the car went anywhere); keyframes by distance at a red light
    # are half a minute apart.
    max_gap_s: float = 90.0


@dataclass(frozen=True)
class Drive:
    """One sequence's frames (time order, GNSS poses in `frame.pose`) with, per frame where
    known, the receiver's HDOP and the distance driven: the device's odometry since the trip
    began (`travelled_m`: Doppler speed integrated over every fix) or, where two consecutive
    frames lack it, from the previous frame by their speeds (`step_m`; the first frame's is not
    used)."""

    frames: Sequence[PosedFrame]
    hdop: Sequence[float | None] | None = None
    travelled_m: Sequence[float | None] | None = None
    step_m: Sequence[float | None] | None = None

    def steps(self) -> tuple[FloatArray, BoolArray]:
        """Distance driven from the previous frame (NaN where unknown), and whether it is the
        device's odometry (the better evidence, weighted as such) rather than `step_m`."""
        count = len(self.frames)
        odometer = np.diff(_values(self.travelled_m, count, np.nan), prepend=np.nan)
        from_odometer = np.isfinite(odometer)
        return np.where(from_odometer, odometer, _values(self.step_m, count, np.nan)), from_odometer


@dataclass(frozen=True)
class RefinedPoses:
    """One sequence's refined poses (same order as its frames) and what went into them;
    `cross_pairs_used`, `anchor_pairs_tried`, `anchor_pairs_used` and `seconds` are for the
    whole call."""

    poses: list[FramePose]
    pairs_tried: int
    pairs_used: int
    frames_on_lanes: int
    cross_pairs_used: int
    seconds: float
    anchor_pairs_tried: int = 0
    anchor_pairs_used: int = 0
    revisit_pairs_used: int = 0


def refine_poses(
    frames: Sequence[PosedFrame],
    calibration: CameraLike,
    *,
    lanes: Sequence[LaneLine] = (),
    hdop: Sequence[float | None] | None = None,
    travelled_m: Sequence[float | None] | None = None,
    settings: RefineSettings | None = None,
) -> RefinedPoses:
    """Poses of one sequence's frames (time order, GNSS poses in `frame.pose`) refined by
    registering their bird's-eye views, fused with GNSS (weighted by `hdop` where given), the
    distance driven since the first frame (`travelled_m`, where given) and snapped sideways to
    `lanes`. Each frame is decoded once."""
    drive = Drive(frames, hdop, travelled_m)
    return refine_sequences([drive], calibration, lanes=lanes, settings=settings)[0]


def refine_sequences(
    drives: Sequence[Drive],
    calibration: CameraLike,
    *,
    lanes: Sequence[LaneLine] = (),
    settings: RefineSettings | None = None,
    memo: RegistrationMemo | None = None,
    anchors: Sequence[Anchor] = (),
) -> list[RefinedPoses]:
    """Each drive's poses refined as `refine_poses` does, then, with more than one drive, all
    together with registrations between drives, then registered with the `anchors` (frames of
    other sequences whose poses stay as they are) and solved again. One camera for the drives
    (one device's); each anchor has its own. Registrations within a drive are looked up in, and
    added to, `memo` when given (frame ids must then name their bytes, as catalog ids do)."""
    s = settings or RefineSettings()
    started = time.perf_counter()
    for drive in drives:
        _check(drive.frames)
    frames = [f for drive in drives for f in drive.frames]
    local = LocalFrame(frames[0].pose.lon, frames[0].pose.lat)
    observed = _observed(drives, local, s.max_gap_s)
    viewer = GroundViewer(calibration, s.grid)
    # Solid lines tell which lane a frame was in, where the map cannot (several lanes each way).
    lines = _LineSight(frames, viewer, s.markings, memo)
    needs_sight = any(line.from_right is not None for line in lanes)
    looking = lines.look if needs_sight else None
    within, tried = _within_edges(drives, viewer, observed, s.gates, memo, looking)
    lanes_found = lane_constraints(
        lanes,
        local,
        observed,
        search_m=s.lane_search_m,
        max_angle_deg=s.lane_max_angle_deg,
        end_margin_m=s.lane_end_margin_m,
        sight=lines.sight() if needs_sight else None,
    )
    refined = solve(observed, _joined(within), lanes_found, s.graph)
    labels = np.repeat(np.arange(len(drives)), [len(d.frames) for d in drives])
    seen = seen_before(labels, refined, viewer, s.gates)
    revisits, _ = register_pairs(frames, seen, refined, viewer, s.gates)
    if revisits.i.size:
        refined = solve(observed, _joined([*within, revisits]), lanes_found, s.graph)
    cross = _joined([])
    if len(drives) > 1:
        earlier = nearest_earlier(labels, refined, s.gates)
        cross, _ = register_pairs(frames, earlier, refined, viewer, s.gates)
        refined = solve(observed, _joined([*within, revisits, cross]), lanes_found, s.graph)
    anchored, anchors_tried = _onto_map(frames, refined, anchors, local, viewer, s.gates)
    if anchored.k.size:
        edges = _joined([*within, revisits, cross])
        refined = solve(observed, edges, lanes_found, s.graph, anchored)
    lon, lat = local.to_wgs84(refined[:, 0], refined[:, 1])
    poses = [
        FramePose(float(lo), float(la), math.degrees(float(h)) % 360.0, f.pose.time_s)
        for lo, la, h, f in zip(lon, lat, refined[:, 2], frames, strict=True)
    ]
    seconds = time.perf_counter() - started
    results, start = [], 0
    for drive, edges, count in zip(drives, within, tried, strict=True):
        end = start + len(drive.frames)
        on_lanes = int(np.count_nonzero((lanes_found.k >= start) & (lanes_found.k < end)))
        revisited = int(np.count_nonzero((revisits.j >= start) & (revisits.j < end)))
        results.append(
            RefinedPoses(
                poses[start:end],
                count,
                int(edges.i.size),
                on_lanes,
                int(cross.i.size),
                seconds,
                anchors_tried,
                int(anchored.k.size),
                revisited,
            )
        )
        start = end
    return results


def _observed(drives: Sequence[Drive], local: LocalFrame, max_gap_s: float) -> Observed:
    """What the receivers said, all drives one after another, labelled by part (`_parts`)."""
    frames = [f for drive in drives for f in drive.frames]
    reported = _local_poses([f.pose for f in frames], local)
    steps, from_odometer = zip(*(d.steps() for d in drives), strict=True)
    return Observed(
        reported[:, 0],
        reported[:, 1],
        reported[:, 2],
        np.array([f.pose.time_s for f in frames]),
        np.concatenate([_values(d.hdop, len(d.frames), 1.0) for d in drives]),
        np.concatenate(steps),
        _parts(drives, max_gap_s),
        np.concatenate(from_odometer),
    )


def _onto_map(
    frames: Sequence[PosedFrame],
    refined: FloatArray,
    anchors: Sequence[Anchor],
    local: LocalFrame,
    viewer: GroundViewer,
    gates: Gates,
) -> tuple[Anchored, int]:
    """The frames (at their `refined` rows) registered with the anchors, and pairs tried."""
    if not anchors:
        return NO_ANCHORS, 0
    fixed = _local_poses([a.frame.pose for a in anchors], local)
    return anchor_constraints(frames, refined, anchors, fixed, viewer, gates)


def _local_poses(poses: Sequence[FramePose], local: LocalFrame) -> FloatArray:
    """(x, y, heading radians) rows in `local`, headings as `_observed` takes them."""
    x, y = local.to_local(np.array([p.lon for p in poses]), np.array([p.lat for p in poses]))
    return np.stack([x, y, np.radians([p.heading_deg for p in poses])], axis=1)


def _parts(drives: Sequence[Drive], max_gap_s: float) -> NDArray[np.int64]:
    """A label per frame: a new one for each drive and after each pause longer than
    `max_gap_s` (the car may have driven anywhere meanwhile: no sideslip or bias link)."""
    labels, label = [], 0
    for drive in drives:
        times = np.array([f.pose.time_s for f in drive.frames])
        breaks = np.concatenate([[0], np.cumsum(np.diff(times) > max_gap_s)])
        labels.append(label + breaks)
        label += int(breaks[-1]) + 1
    return np.concatenate(labels).astype(np.int64)


def _within_edges(
    drives: Sequence[Drive],
    viewer: GroundViewer,
    observed: Observed,
    gates: Gates,
    memo: RegistrationMemo | None,
    on_view: Callable[[int, GroundView], None] | None,
) -> tuple[list[Edges], list[int]]:
    """Each drive's own registrations (indices into all frames) and how many were tried; each
    view decoded is shown to `on_view` with its index into all frames."""
    edges, tried, offset = [], [], 0
    for drive in drives:
        shown = None if on_view is None else functools.partial(_shifted, on_view, offset)
        found, count = sequence_edges(drive.frames, viewer, observed, gates, offset, memo, shown)
        edges.append(found)
        tried.append(count)
        offset += len(drive.frames)
    return edges, tried


def _shifted(
    on_view: Callable[[int, GroundView], None], offset: int, k: int, view: GroundView
) -> None:
    on_view(offset + k, view)


class _LineSight:
    """The solid lines seen on each frame: from views decoded for registration, from `memo`, or
    by decoding the frame."""

    def __init__(
        self,
        frames: Sequence[PosedFrame],
        viewer: GroundViewer,
        settings: MarkingSettings,
        memo: RegistrationMemo | None,
    ) -> None:
        self.frames, self.viewer, self.settings, self.memo = frames, viewer, settings, memo
        self._seen: dict[int, SolidLines] = {}

    def look(self, k: int, view: GroundView) -> None:
        """Find the solid lines on frame k's `view`."""
        seen = solid_lines(view, self.viewer.grid, self.settings)
        self._seen[k] = seen
        if self.memo is not None:
            self.memo.put_lines(self._key(k), seen)

    def _key(self, k: int) -> LinesKey:
        return (self.frames[k].frame_id, self.viewer.fingerprint, self.settings)

    def sight(self) -> SolidLineSight:
        """Every frame's nearest solid lines, right and left."""
        for k, frame in enumerate(self.frames):
            if k in self._seen:
                continue
            held = None if self.memo is None else self.memo.lines(self._key(k))
            if held is not None:
                self._seen[k] = held
            else:
                self.look(k, self.viewer.view(frame.load()))
        seen = [self._seen[k] for k in range(len(self.frames))]
        return SolidLineSight(
            np.array([s.right_m for s in seen], np.float64),
            np.array([s.left_m for s in seen], np.float64),
        )


def _joined(parts: Sequence[Edges]) -> Edges:
    """Edge arrays of several parts as one."""
    if not parts:
        empty = np.zeros(0)
        return Edges(np.zeros(0, np.int64), np.zeros(0, np.int64), empty, empty, empty)
    return Edges(
        *(np.concatenate([getattr(p, name) for p in parts]) for name in Edges.__dataclass_fields__)
    )


def _values(given: Sequence[float | None] | None, count: int, missing: float) -> FloatArray:
    """Per-frame values as an array, `missing` where not given."""
    if given is not None and len(given) != count:
        msg = f"got {len(given)} per-frame values for {count} frames: pass one per frame (None where unknown)"
        raise PoseRefinementError(msg)
    return np.array([missing if v is None else float(v) for v in (given or [None] * count)])


def _check(frames: Sequence[PosedFrame]) -> None:
    """At least two frames, in strictly increasing time."""
    if len(frames) < 2:
        msg = f"pose refinement needs a sequence of at least 2 frames, got {len(frames)}"
        raise PoseRefinementError(msg)
    times = np.array([f.pose.time_s for f in frames])
    if np.any(np.diff(times) <= 0):
        k = int(np.flatnonzero(np.diff(times) <= 0)[0])
        msg = (
            f"frame times must increase along a sequence: frame {frames[k + 1].frame_id} is not "
            f"later than {frames[k].frame_id}; sort the frames or split the sequence"
        )
        raise PoseRefinementError(msg)
