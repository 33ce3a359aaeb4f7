"""Constraints for the pose graph: registrations within a sequence and between sequences, and
lane lines.

Registrations are gated: a pair counts when its response clears `min_response` and it lies
within `max_correction_m` of the guess (a farther answer is a false match: a truck ahead, a
repeated pattern). Between sequences (other drives over the same road) each frame is
registered with the nearest frame of an earlier sequence that looks the same way, starting
from their poses refined one drive at a time. Within a sequence, a frame that sees ground seen
many frames before (a loop round a block, the way back from a dead end) is registered with the
frame that saw it: their GNSS errors are minutes apart and differ, and would double the road's
markings where their imagery meets.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from mapbuilder.geo import LocalFrame
from mapbuilder.tiles.build import PosedFrame
from mapbuilder.tiles.markings import MarkingSettings, SolidLines
from mapbuilder.tiles.posegraph import Edges, Lanes, Observed, wrap
from mapbuilder.tiles.register import (
    GroundView,
    GroundViewer,
    RelativeMotion,
    register_pair,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
K = TypeVar("K")
V = TypeVar("V")
VIEW_CACHE = 64


@dataclass(frozen=True)
class Gates:
    """Which frames are registered and which registrations are believed."""

    max_gap: int = 2  # each frame is registered with the next max_gap frames of its sequence
    min_response: float = 0.4
    max_correction_m: float = 2.0
    cross_radius_m: float = 6.0  # frames of two sequences this close are registered
    cross_max_angle_deg: float = 20.0
    # Two drives disagree by their GNSS biases along the road, metres where no turn pins them.
    cross_max_correction_m: float = 4.0
    # Frames of one sequence at least this many apart that see the same ground are registered
    # (with the cross-sequence radius, angle and correction gates).
    revisit_min_gap: int = 8


@dataclass(frozen=True)
class LaneLine:
    """A lane centre the vehicle drove along, as map matching implies it: the matched segment's
    centreline shifted to the lane's offset, vertices (lon, lat) in the driving direction.

    Where its direction has several lanes, `from_right` says which lane this is (0 the
    rightmost) of `lanes`, each `lane_width_m` wide: only frames whose imagery shows they were
    in it (`markings.lane_agreement`) are held to it. None: the direction's only lane."""

    lon: tuple[float, ...]
    lat: tuple[float, ...]
    from_right: int | None = None
    lanes: int = 1
    lane_width_m: float = 0.0


PairKey = tuple[str, str, str, RelativeMotion]  # frame ids, the viewer's fingerprint, the guess
LinesKey = tuple[str, str, MarkingSettings]  # frame id, the viewer's fingerprint, the settings


class _Recent(Generic[K, V]):
    """A dict of at most `limit` entries; the one read or written longest ago goes first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._held.get(key)
        if value is not None:
            self._held.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._held[key] = value
        self._held.move_to_end(key)
        while len(self._held) > self.limit:
            self._held.popitem(last=False)


class RegistrationMemo:
    """Registrations of frame pairs made before, in this process: a sequence refined again with
    a later batch registers only its new pairs (registration is most of what refining costs).

    A registration depends on the two frames' pixels (a catalog frame's id is the sha256 of its
    bytes), the viewer's remap table and the starting guess, and on nothing else: those are the
    key, so what is found here is what registering again would give. Only frames whose ids name
    their bytes may be looked up; the oldest pairs go past `max_pairs`. The solid lines seen
    on a frame (`markings.solid_lines`) are kept the same way, keyed by its id, the viewer's
    fingerprint and the settings, so a frame whose pairs are all held here is not decoded
    again."""

    def __init__(self, max_pairs: int = 50_000) -> None:
        self.max_pairs = max_pairs
        self._found: _Recent[PairKey, RelativeMotion] = _Recent(max_pairs)
        self._lines: _Recent[LinesKey, SolidLines] = _Recent(max_pairs)

    def get(self, key: PairKey) -> RelativeMotion | None:
        """The registration made under `key`, if it is still held."""
        return self._found.get(key)

    def put(self, key: PairKey, motion: RelativeMotion) -> None:
        """Remember a registration."""
        self._found.put(key, motion)

    def lines(self, key: LinesKey) -> SolidLines | None:
        """The solid lines seen on a frame, if held: `key` is its id, the viewer's fingerprint
        and the settings they were looked for with."""
        return self._lines.get(key)

    def put_lines(self, key: LinesKey, seen: SolidLines) -> None:
        """Remember the solid lines seen on a frame."""
        self._lines.put(key, seen)


def sequence_edges(
    frames: Sequence[PosedFrame],
    viewer: GroundViewer,
    observed: Observed,
    gates: Gates,
    offset: int = 0,
    memo: RegistrationMemo | None = None,
    on_view: Callable[[int, GroundView], None] | None = None,
) -> tuple[Edges, int]:
    """Registrations of each frame of one sequence with its next `max_gap`, those passing the
    gates (frame indices + `offset`), and how many were tried. A pair found in `memo` is not
    registered again, and a frame none of whose pairs needs registering is not decoded. Only
    max_gap + 1 ground views are held at a time; each frame is decoded at most once, and each
    view decoded is shown to `on_view` (with the frame's index in `frames`)."""
    views: dict[int, GroundView] = {}

    def view(k: int) -> GroundView:
        if k not in views:
            views[k] = viewer.view(frames[k].load())
            if on_view is not None:
                on_view(k, views[k])
        return views[k]

    found: list[tuple[int, int, RelativeMotion]] = []
    tried = 0
    for j in range(len(frames)):
        views.pop(j - gates.max_gap - 1, None)
        for i in range(max(0, j - gates.max_gap), j):
            tried += 1
            guess = receiver_step(observed, i + offset, j + offset)
            key = (frames[i].frame_id, frames[j].frame_id, viewer.fingerprint, guess)
            motion = memo.get(key) if memo is not None else None
            if motion is None:
                motion = register_pair(viewer.grid, view(i), view(j), guess)
                if memo is not None:
                    memo.put(key, motion)
            if accepted(motion, guess, gates.min_response, gates.max_correction_m):
                found.append((i + offset, j + offset, motion))
    return _edges(found), tried


def register_pairs(
    frames: Sequence[PosedFrame],
    pairs: list[tuple[int, int]],
    poses: FloatArray,
    viewer: GroundViewer,
    gates: Gates,
) -> tuple[Edges, int]:
    """The (i, j) pairs (`nearest_earlier`, `seen_before`) registered from their `poses`
    (x, y, heading per frame) as views taken far apart in time, whose correlation peak may
    wander (`near`); those passing the cross-sequence gates, and how many were tried."""
    cache: OrderedDict[int, GroundView] = OrderedDict()

    def view(k: int) -> GroundView:
        if k not in cache:
            cache[k] = viewer.view(frames[k].load())
            if len(cache) > VIEW_CACHE:
                cache.popitem(last=False)
        return cache[k]

    found: list[tuple[int, int, RelativeMotion]] = []
    for i, j in pairs:
        guess = relative_motion(poses, i, j)
        motion = register_pair(viewer.grid, view(i), view(j), guess, near=True)
        if accepted(motion, guess, gates.min_response, gates.cross_max_correction_m):
            found.append((i, j, motion))
    return _edges(found), len(pairs)


def seen_before(
    labels: IntArray, poses: FloatArray, viewer: GroundViewer, gates: Gates
) -> list[tuple[int, int]]:
    """(i, j): for each frame j, the frame i of its own sequence, at least `revisit_min_gap`
    before it, whose view of the ground lies nearest to j's, within `cross_radius_m` (centre to
    centre) and looking within `cross_max_angle_deg` the same way or the opposite way: driving
    back along a road, the camera sees from its far end the ground it saw from the near one."""
    reach = (viewer.grid.near_m + viewer.grid.far_m) / 2
    centres = poses[:, :2] + reach * np.stack([np.sin(poses[:, 2]), np.cos(poses[:, 2])], axis=1)
    min_cos = math.cos(math.radians(gates.cross_max_angle_deg))
    pairs = []
    for j in range(len(poses)):
        before = np.flatnonzero(labels[: max(0, j - gates.revisit_min_gap + 1)] == labels[j])
        if before.size == 0:
            continue
        distance = np.hypot(*(centres[before] - centres[j]).T)
        facing = np.abs(np.cos(poses[before, 2] - poses[j, 2])) >= min_cos
        near = np.flatnonzero(facing & (distance <= gates.cross_radius_m))
        if near.size:
            pairs.append((int(before[near[np.argmin(distance[near])]]), j))
    return pairs


def nearest_earlier(labels: IntArray, poses: FloatArray, gates: Gates) -> list[tuple[int, int]]:
    """(i, j): for each frame j, the nearest frame i of an earlier sequence that qualifies."""
    pairs = []
    for j in np.flatnonzero(labels > labels.min()):
        earlier = np.flatnonzero(labels < labels[j])
        nearest = nearest_alike(poses[earlier], poses[j], gates)
        if nearest is not None:
            pairs.append((int(earlier[nearest]), int(j)))
    return pairs


def nearest_alike(candidates: FloatArray, pose: FloatArray, gates: Gates) -> int | None:
    """The row of `candidates` (x, y, heading rows) nearest to `pose` within `cross_radius_m`
    that looks within `cross_max_angle_deg` the same way, or None."""
    if candidates.size == 0:
        return None
    min_cos = math.cos(math.radians(gates.cross_max_angle_deg))
    distance = np.hypot(candidates[:, 0] - pose[0], candidates[:, 1] - pose[1])
    alike = np.cos(candidates[:, 2] - pose[2]) >= min_cos
    near = np.flatnonzero(alike & (distance <= gates.cross_radius_m))
    return int(near[np.argmin(distance[near])]) if near.size else None


def relative_motion(poses: FloatArray, i: int, j: int) -> RelativeMotion:
    """Frame j's pose in frame i's camera frame, from (x, y, heading) rows."""
    dx, dy = poses[j, 0] - poses[i, 0], poses[j, 1] - poses[i, 1]
    h = poses[i, 2]
    turn = float(wrap(np.array(poses[j, 2] - h)))
    return RelativeMotion(
        float(dx * math.cos(h) - dy * math.sin(h)),
        float(dx * math.sin(h) + dy * math.cos(h)),
        math.degrees(turn),
        0.0,
    )


def receiver_step(observed: Observed, i: int, j: int) -> RelativeMotion:
    """Frame j seen from frame i as the receiver has it, the guess registration starts from:
    turned by the change of course, each step between them along the chord of a steady turn
    (half the step's change of course to the side: a car does not move sideways, so in a bend
    j lies off i's axis). A step is the distance driven where known (Doppler speed, within
    centimetres where fixes wander by metres), else the distance between the fixes."""
    heading = observed.heading_rad[i : j + 1]
    turns = wrap(np.diff(heading))
    driven = observed.step_m[i + 1 : j + 1]
    if np.all(np.isfinite(driven)):
        chords = driven * np.sinc(turns / 2 / np.pi)
    else:
        chords = np.hypot(np.diff(observed.x[i : j + 1]), np.diff(observed.y[i : j + 1]))
    # Each chord's direction relative to frame i's heading (clockwise), summed in i's frame.
    directions = heading[:-1] + turns / 2 - heading[0]
    right = float(np.sum(chords * np.sin(directions)))
    forward = float(np.sum(chords * np.cos(directions)))
    return RelativeMotion(right, forward, math.degrees(float(wrap(heading[-1] - heading[0]))), 0.0)


def accepted(
    motion: RelativeMotion, guess: RelativeMotion, min_response: float, max_correction_m: float
) -> bool:
    """A registration to believe: a clear response, not implausibly far from the guess."""
    correction = math.hypot(motion.right_m - guess.right_m, motion.forward_m - guess.forward_m)
    return motion.response >= min_response and correction <= max_correction_m


def _edges(found: list[tuple[int, int, RelativeMotion]]) -> Edges:
    """The found registrations as the graph's edge arrays."""
    return Edges(
        np.array([i for i, _, _ in found], np.int64),
        np.array([j for _, j, _ in found], np.int64),
        np.array([m.right_m for _, _, m in found], np.float64),
        np.array([m.forward_m for _, _, m in found], np.float64),
        np.radians(np.array([m.turn_deg for _, _, m in found], np.float64)),
    )


@dataclass(frozen=True)
class SolidLineSight:
    """Per frame, the nearest solid line painted right and left of the camera, metres (NaN
    where none was seen: `markings.solid_lines`)."""

    right_m: FloatArray
    left_m: FloatArray


def unseen(count: int) -> SolidLineSight:
    """No solid line seen on any of `count` frames."""
    return SolidLineSight(np.full(count, np.nan), np.full(count, np.nan))


# Where in its lane a solid line puts the camera, in lane widths from the line (a lane's centre
# is 0.5; an edge line is painted a little inside the road). Nearer a lane's edge, the car is
# changing lanes and no lane is told.
LANE_PLACE = (0.15, 0.85)
NEIGHBOURS = 2  # frames either way: none may put the car in another lane, one must agree
NO_LANE = -1


def lane_agreement(
    line: LaneLine, sight: SolidLineSight, sequence: IntArray | None = None
) -> NDArray[np.bool_]:
    """The frames `line` may hold: all for a direction's only lane; for one of several, those
    whose solid lines on both sides put them in it (the road as wide as its lanes: a solid line
    between lanes, a long dash taken for a solid line or a lane count the map has wrong makes
    the sides disagree), with another frame of the same `sequence` part within NEIGHBOURS
    agreeing and none putting the car elsewhere."""
    count = sight.right_m.size
    if line.from_right is None:
        return np.ones(count, bool)
    from_left = line.lanes - 1 - line.from_right
    right = _lane_from(sight.right_m, line.lane_width_m)
    left = _lane_from(sight.left_m, line.lane_width_m)
    agrees = (right == line.from_right) & (left == from_left)
    # A side seen says otherwise: another lane, or the car near a lane's edge (NO_LANE).
    disagrees = (np.isfinite(sight.right_m) & (right != line.from_right)) | (
        np.isfinite(sight.left_m) & (left != from_left)
    )
    part = np.zeros(count, np.int64) if sequence is None else sequence
    agreeing = np.zeros(count, bool)
    disagreeing = np.zeros(count, bool)
    for step in (*range(-NEIGHBOURS, 0), *range(1, NEIGHBOURS + 1)):
        other = np.arange(count) + step
        inside = (other >= 0) & (other < count)
        other = np.clip(other, 0, count - 1)
        same = inside & (part[other] == part)
        agreeing |= same & agrees[other]
        disagreeing |= same & disagrees[other]
    return np.asarray(agrees & agreeing & ~disagreeing)


def _lane_from(distance_m: FloatArray, lane_width_m: float) -> NDArray[np.int64]:
    """Which lane (0 the nearest) a solid line `distance_m` away puts the camera in, NO_LANE
    where none was seen or the camera is near a lane's edge."""
    place = distance_m / lane_width_m if lane_width_m > 0 else np.full_like(distance_m, np.nan)
    lane = np.floor(np.nan_to_num(place, nan=-1.0)).astype(np.int64)
    within = place - lane
    told = np.isfinite(place) & (within >= LANE_PLACE[0]) & (within <= LANE_PLACE[1])
    return np.where(told, lane, NO_LANE)


def lane_constraints(
    lanes: Sequence[LaneLine],
    local: LocalFrame,
    observed: Observed,
    *,
    search_m: float,
    max_angle_deg: float,
    end_margin_m: float,
    sight: SolidLineSight | None = None,
) -> Lanes:
    """For each frame, the nearest lane piece within reach whose driving direction agrees with
    the frame's heading, as a point and a unit normal (a two-way road driven both ways has a
    lane line each way, a lane apart: a frame must not take the other one), among the lines
    whose lane the frame's `sight` of solid lines agrees with (`lane_agreement`). The last
    `end_margin_m` at either end of a lane line are left out: there drivers round the corner
    of the junction and the line says little."""
    n = observed.x.size
    sight = sight or unseen(n)
    best = np.full(n, np.inf)
    point = np.zeros((n, 2))
    normal = np.zeros((n, 2))
    forward = np.stack([np.sin(observed.heading_rad), np.cos(observed.heading_rad)], axis=1)
    position = np.stack([observed.x, observed.y], axis=1)
    min_cos = math.cos(math.radians(max_angle_deg))
    for lane in lanes:
        held = lane_agreement(lane, sight, observed.sequence)
        lx, ly = local.to_local(np.array(lane.lon), np.array(lane.lat))
        vertices = np.stack([lx, ly], axis=1)
        lengths = np.hypot(*np.diff(vertices, axis=0).T)
        starts = np.concatenate([[0.0], np.cumsum(lengths)])
        for a, b, length, start in zip(vertices[:-1], vertices[1:], lengths, starts, strict=False):
            if length < 1e-6:
                continue
            direction = (b - a) / length
            along = np.clip((position - a) @ direction, 0.0, length)
            foot = a + along[:, None] * direction
            distance = np.hypot(*(position - foot).T)
            inside = np.abs(start + along - starts[-1] / 2) <= starts[-1] / 2 - end_margin_m
            aligned = forward @ direction >= min_cos
            better = held & aligned & inside & (distance < best) & (distance <= search_m)
            best[better] = distance[better]
            point[better] = foot[better]
            normal[better] = (direction[1], -direction[0])
    k = np.flatnonzero(np.isfinite(best))
    return Lanes(k, point[k, 0], point[k, 1], normal[k, 0], normal[k, 1])
