"""Pose refinement as the tile pipeline's `PoseRefiner` (the seam in `poses.poses_for`).

`CatalogRefiner` is the pipeline's: for each sequence it reads what refinement needs from the
catalog (`refine_inputs`: the receiver's fixes, speeds and HDOP, the device's odometry), lane
lines from the roads the sequence was matched to (`lanes`) and the frames from the object store,
and refines them from the receiver's fixes, aligned to the map (`map_frames`: refined frames
of sequences that reached the catalog before it, near it; their poses stay as they are, and one
refined earlier in the same run counts with its new poses), unless the very same inputs (the
map frames near it included) were refined before:
then the stored poses come back, so a sequence is refined once per change whichever task asks
first, and the tiles built from it do not depend on the order blocks are built in. A sequence
that cannot be refined keeps its smoothed poses and the reason is recorded; it never fails the
build. `pose_refiner` refines frames given by loaders (tests, benchmarks).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from itertools import groupby

import cv2
import numpy as np

from ingest.db import Catalog
from ingest.states import SequenceKey
from ingest.storage import ObjectStore
from mapbuilder.camera import CalibrationError, CameraLike, PinholeCamera
from mapbuilder.errors import MapError
from mapbuilder.tiles.bev import FramePose, U8Image
from mapbuilder.tiles.build import PosedFrame
from mapbuilder.tiles.constraints import RegistrationMemo
from mapbuilder.tiles.frames import FrameUnreadableError, read_frame
from mapbuilder.tiles.lanes import lane_lines
from mapbuilder.tiles.map_frames import (
    MapFrame,
    SequenceOrder,
    in_box,
    metres_apart,
    nearest_per_pose,
    sequence_order,
    sequences_near,
    stored_map_frames,
)
from mapbuilder.tiles.poses import SMOOTHED, CatalogPose, PoseRefiner
from mapbuilder.tiles.refine import (
    Anchor,
    Drive,
    LaneLine,
    PoseRefinementError,
    RefinedPoses,
    RefineSettings,
    refine_sequences,
)
from mapbuilder.tiles.refine_inputs import (
    Odometry,
    SequenceInputs,
    inputs_sha256,
    last_refinement,
    odometry,
    read_inputs,
    steps_m,
    stored_poses,
)

log = logging.getLogger(__name__)
REGISTERED = "registered"
# Part of every sequence's input digest: change it when refinement gives other answers for the
# same inputs, and every sequence is refined again the next time it is posed.
REFINER_VERSION = 6
# GNSS is off by a few metres, in a street canyon by ten: a refined pose farther than this from
# the receiver's fix means registration went wrong, and the smoothed poses are kept.
MAX_SHIFT_M = 20.0
# Map frames are chosen around the smoothed poses, and paired with the refined ones within
# `Gates.cross_radius_m` (6 m) looking within 20 degrees the same way: the reach and the angle
# leave room for the refinement to move a pose a few metres and turn it a few degrees.
MAP_REACH_M = 12.0
MAP_MAX_ANGLE_DEG = 45.0
MAP_FRAMES_PER_POSE = 3
# A later sequence's stored poses may lie this much farther from a moved pose than the smoothed
# poses its map was chosen around (refinement moves a pose by about the receiver's bias).
FOLLOW_MARGIN_M = 8.0


@dataclass(frozen=True)
class RefinementOutcome:
    """How one sequence's poses were refined: "registered", or "smoothed" and why not; and
    whether the device's odometry was used (`refine_inputs.Odometry.status`)."""

    key: SequenceKey
    inputs_sha256: str
    outcome: str
    reason: str | None
    detail: str
    frames: int
    pairs_tried: int = 0
    pairs_used: int = 0
    frames_on_lanes: int = 0
    seconds: float = 0.0
    odometry: str | None = None
    map_pairs_used: int = 0


class NotRefinedError(MapError):
    """Refinement of a sequence is not possible: a reason code and what happened."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class _Refined:
    poses: list[CatalogPose]
    pairs_tried: int
    pairs_used: int
    frames_on_lanes: int
    map_pairs_used: int = 0


class CatalogRefiner:
    """The pipeline's refiner over a catalog and an object store; `outcomes` collects how each
    sequence refined in this run went (reused ones are not repeated), for the caller to store
    with the poses."""

    def __init__(
        self,
        catalog: Catalog,
        store: ObjectStore,
        settings: RefineSettings | None = None,
        memo: RegistrationMemo | None = None,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.settings = settings or RefineSettings()
        # Kept by the worker process across tasks: a sequence's next batch registers only
        # its new pairs (catalog frame ids name their bytes, as the memo requires).
        self.memo = memo
        self.outcomes: list[RefinementOutcome] = []
        # Poses registered in this run, not stored yet: later sequences align to them, not to
        # what is stored for the sequences handled in this run.
        self._registered_now: dict[str, MapFrame] = {}
        # Per sequence handled in this run, its smoothed poses and the map it was aligned to
        # (`stale_maps` checks it against what is stored once this run's poses are).
        self._maps: dict[SequenceKey, tuple[list[CatalogPose], list[MapFrame]]] = {}
        self._orders: dict[SequenceKey, SequenceOrder] = {}

    def __call__(self, found: Sequence[CatalogPose]) -> list[CatalogPose]:
        """One sequence's smoothed poses (time order) refined: same frames, same order."""
        inputs = read_inputs(self.catalog, found)
        lanes = lane_lines(inputs.roads)
        fresh = self._registered_now.values()
        near = self._map(inputs.key, found, fresh=fresh, skip=self._maps.keys())
        self._maps[inputs.key] = (list(found), near)
        settings = f"{REFINER_VERSION}:{self.settings!r}"
        digest = inputs_sha256(found, inputs, lanes, settings, near)
        reused = self._reused(found, inputs.key, digest)
        if reused is not None:
            self._remember(reused, inputs)
            return reused
        poses = self._refined(found, inputs, lanes, near, digest)
        self._remember(poses, inputs)
        return poses

    def stale_maps(self) -> list[SequenceKey]:
        """Sequences handled here whose map changed since it was read (another worker stored a
        sequence before it)."""
        return sorted(
            key
            for key, (found, near) in self._maps.items()
            if _positions(self._map(key, found)) != _positions(near)
        )

    def followers(
        self, posed: Collection[SequenceKey], moved: Sequence[FramePose]
    ) -> list[SequenceKey]:
        """Sequences not posed here that came after the first of the `posed` ones and have
        poses near those that `moved` (old and new: they may have been aligned to them). Taking
        too many costs little: an unchanged map gives the same digest."""
        if not moved:
            return []
        near = sequences_near(self.catalog, moved, MAP_REACH_M + FOLLOW_MARGIN_M) - set(posed)
        order = self._order({*near, *posed})
        first = min((order[key] for key in posed if key in order), default=None)
        return sorted(
            key for key in near if first is not None and key in order and order[key] > first
        )

    def _map(
        self,
        key: SequenceKey,
        found: Sequence[CatalogPose],
        *,
        fresh: Iterable[MapFrame] = (),
        skip: Collection[SequenceKey] = (),
    ) -> list[MapFrame]:
        """The map a sequence is aligned to: frames of sequences that reached the catalog before
        it, near its poses; stored ones, but for the sequences in `skip`, and `fresh` ones."""
        stored = stored_map_frames(self.catalog, key, found, MAP_REACH_M, REGISTERED)
        candidates = [m for m in stored if m.key not in skip]
        candidates += [m for m in in_box(fresh, found, MAP_REACH_M) if m.key != key]
        order = self._order({key, *(m.key for m in candidates)})
        own = order.get(key)
        earlier = [m for m in candidates if own is not None and order.get(m.key, own) < own]
        return nearest_per_pose(
            earlier,
            found,
            reach_m=MAP_REACH_M,
            max_angle_deg=MAP_MAX_ANGLE_DEG,
            per_pose=MAP_FRAMES_PER_POSE,
        )

    def _order(self, keys: Collection[SequenceKey]) -> dict[SequenceKey, SequenceOrder]:
        """Where these sequences stand in the map's order, read once per sequence per run."""
        missing = [key for key in keys if key not in self._orders]
        if missing:
            self._orders.update(sequence_order(self.catalog, missing))
        return {key: self._orders[key] for key in keys if key in self._orders}

    def _refined(
        self,
        found: Sequence[CatalogPose],
        inputs: SequenceInputs,
        lanes: list[LaneLine],
        near: list[MapFrame],
        digest: str,
    ) -> list[CatalogPose]:
        """The sequence refined (or its smoothed poses and why), its outcome recorded."""
        started = time.perf_counter()
        driven = odometry(found, inputs)
        if driven.detail:
            log.warning("sequence %s/%s: %s", *inputs.key, driven.detail)
        outcome = RefinementOutcome(
            inputs.key, digest, REGISTERED, None, driven.detail, len(found), odometry=driven.status
        )
        try:
            refined = self._refine(found, inputs, lanes, driven, near)
        except NotRefinedError as skip:
            log.warning("sequence %s/%s keeps its smoothed poses: %s", *inputs.key, skip.detail)
            poses = list(found)
            detail = "; ".join(filter(None, [skip.detail, driven.detail]))
            outcome = replace(outcome, outcome=SMOOTHED, reason=skip.reason, detail=detail)
        else:
            poses = refined.poses
            outcome = replace(
                outcome,
                pairs_tried=refined.pairs_tried,
                pairs_used=refined.pairs_used,
                frames_on_lanes=refined.frames_on_lanes,
                map_pairs_used=refined.map_pairs_used,
            )
        self.outcomes.append(replace(outcome, seconds=time.perf_counter() - started))
        return poses

    def _remember(self, poses: Sequence[CatalogPose], inputs: SequenceInputs) -> None:
        """Keep the sequence's registered poses as map frames for the sequences after it in
        this run."""
        for posed, frame in zip(poses, inputs.frames, strict=True):
            if posed.source == REGISTERED:
                calibration = inputs.calibrations[posed.camera_id]
                self._registered_now[posed.frame_id] = MapFrame(
                    inputs.key,
                    posed.frame_id,
                    frame.object_key,
                    posed.camera_id,
                    calibration,
                    posed.pose,
                )

    def _reused(
        self, found: Sequence[CatalogPose], key: SequenceKey, digest: str
    ) -> list[CatalogPose] | None:
        """The poses of the last refinement when it had the same inputs, else None."""
        last = last_refinement(self.catalog, key)
        if last is None or last.inputs_sha256 != digest:
            return None
        if last.outcome == SMOOTHED:
            return list(found)  # it failed on these very inputs: it would fail again
        return stored_poses(self.catalog, key, found, REGISTERED)

    def _refine(
        self,
        found: Sequence[CatalogPose],
        inputs: SequenceInputs,
        lanes: list[LaneLine],
        driven: Odometry,
        near: Sequence[MapFrame],
    ) -> _Refined:
        objects = {p.frame_id: f.object_key for p, f in zip(found, inputs.frames, strict=True)}
        objects.update((m.frame_id, m.object_key) for m in near)

        def load(frame_id: str) -> U8Image:
            return read_frame(self.store, frame_id, objects[frame_id], grey=True)

        def camera_of(camera_id: str) -> CameraLike:
            return PinholeCamera.from_calibration(inputs.calibrations[camera_id])

        # The pose graph models the receiver's own error (white noise and a drifting bias), so
        # it starts from what the receiver said, not from the smoothed track.
        reported = [
            replace(p, pose=FramePose(f.lon, f.lat, f.heading_deg, p.pose.time_s))
            for p, f in zip(found, inputs.frames, strict=True)
        ]
        return _refine_runs(
            reported,
            load,
            camera_of,
            lanes=lanes,
            hdop=[f.hdop for f in inputs.frames],
            travelled_m=driven.travelled_m,
            step_m=steps_m(found, inputs),
            settings=self.settings,
            memo=self.memo,
            anchors=_anchors(near, load),
        )


def _positions(frames: Sequence[MapFrame]) -> list[tuple[str, float, float, float]]:
    """What of the map frames a refinement depends on that can change: which, and where."""
    return [(m.frame_id, m.pose.lon, m.pose.lat, m.pose.heading_deg) for m in frames]


def _anchors(near: Sequence[MapFrame], load: Callable[[str], U8Image]) -> list[Anchor]:
    """The map frames as anchors; frames of a camera whose calibration no longer makes a camera
    are left out (with a warning: the map's damage is not this sequence's)."""
    cameras: dict[str, CameraLike | None] = {}
    anchors = []
    for frame in near:
        if frame.camera_id not in cameras:
            cameras[frame.camera_id] = _camera_or_none(frame)
        camera = cameras[frame.camera_id]
        if camera is not None:
            posed = PosedFrame(frame.frame_id, frame.pose, partial(load, frame.frame_id))
            anchors.append(Anchor(posed, camera, frame.camera_id))
    return anchors


def _camera_or_none(frame: MapFrame) -> CameraLike | None:
    try:
        return PinholeCamera.from_calibration(frame.calibration)
    except CalibrationError as exc:
        log.warning("map frames of camera %s left out: %s", frame.camera_id, exc)
        return None


def pose_refiner(
    load: Callable[[str], U8Image],
    camera_of: Callable[[str], CameraLike],
    *,
    lanes: Sequence[LaneLine] = (),
    settings: RefineSettings | None = None,
) -> PoseRefiner:
    """A refiner for `poses_for`: `load(frame_id)` gives a frame's pixels (RGB or grey) and
    `camera_of(camera_id)` its camera. Each run of frames from one camera is refined with
    `refine_sequences` (a run of one frame is kept as it is); poses come back with source
    "registered", same frames, same order. `NotRefinedError` where `CatalogRefiner` would keep the
    smoothed poses and record the reason."""

    def refine(found: Sequence[CatalogPose]) -> list[CatalogPose]:
        return _refine_runs(
            found, load, camera_of, lanes=lanes, settings=settings or RefineSettings()
        ).poses

    return refine


def _refine_runs(
    found: Sequence[CatalogPose],
    load: Callable[[str], U8Image],
    camera_of: Callable[[str], CameraLike],
    *,
    lanes: Sequence[LaneLine],
    settings: RefineSettings,
    hdop: Sequence[float | None] | None = None,
    travelled_m: Sequence[float | None] | None = None,
    step_m: Sequence[float | None] | None = None,
    memo: RegistrationMemo | None = None,
    anchors: Sequence[Anchor] = (),
) -> _Refined:
    """Each run of frames from one camera refined on its own, aligned to the `anchors`;
    `NotRefinedError` when any cannot be."""
    if len(found) < 2:
        raise NotRefinedError(
            "too_few_frames", "a single frame has no neighbour to be registered with"
        )
    refined: list[CatalogPose] = []
    tried = used = on_lanes = on_map = 0
    start = 0
    for camera_id, group in groupby(found, key=lambda p: p.camera_id):
        run = list(group)
        end = start + len(run)
        if len(run) < 2:
            refined.extend(run)
        else:
            frames = [PosedFrame(p.frame_id, p.pose, partial(load, p.frame_id)) for p in run]
            drive = Drive(
                frames,
                None if hdop is None else hdop[start:end],
                travelled_m=None if travelled_m is None else travelled_m[start:end],
                step_m=None if step_m is None else step_m[start:end],
            )
            camera = camera_of(camera_id)
            result = _refined_run(drive, camera, lanes, settings, memo, anchors)
            refined.extend(
                replace(p, pose=pose, source=REGISTERED)
                for p, pose in zip(run, result.poses, strict=True)
            )
            tried, used = tried + result.pairs_tried, used + result.pairs_used
            on_lanes += result.frames_on_lanes
            on_map += result.anchor_pairs_used
        start = end
    return _Refined(refined, tried, used, on_lanes, on_map)


def _refined_run(
    drive: Drive,
    camera: CameraLike,
    lanes: Sequence[LaneLine],
    settings: RefineSettings,
    memo: RegistrationMemo | None,
    anchors: Sequence[Anchor],
) -> RefinedPoses:
    """One camera's run refined, poses rounded as the smoothed ones are (0.1 mm, 1e-4 degree),
    or `NotRefinedError` saying why not."""
    try:
        result = refine_sequences(
            [drive], camera, lanes=lanes, settings=settings, memo=memo, anchors=anchors
        )[0]
    except FrameUnreadableError as exc:
        raise NotRefinedError("frame_unreadable", f"{exc}; the tiles are built without it") from exc
    except PoseRefinementError as exc:
        raise NotRefinedError("unusable_sequence", str(exc)) from exc
    except (cv2.error, np.linalg.LinAlgError, ArithmeticError, ValueError) as exc:
        log.exception("pose refinement failed")
        raise NotRefinedError("refinement_failed", f"{type(exc).__name__}: {exc}") from exc
    poses = [_rounded(p) for p in result.poses]
    shift = max(metres_apart(f.pose, p) for f, p in zip(drive.frames, poses, strict=True))
    if not math.isfinite(shift) or shift > MAX_SHIFT_M:
        msg = (
            f"refined poses moved up to {shift:.1f} m from the receiver's fixes (more than "
            f"{MAX_SHIFT_M:g} m): registration went wrong, so the smoothed poses are kept"
        )
        raise NotRefinedError("diverged", msg)
    return replace(result, poses=poses)


def _rounded(pose: FramePose) -> FramePose:
    """A pose rounded as `poses._smoothed` rounds: refining the same inputs in another process
    gives the same stored values."""
    return FramePose(
        round(pose.lon, 9), round(pose.lat, 9), round(pose.heading_deg, 4) % 360.0, pose.time_s
    )
