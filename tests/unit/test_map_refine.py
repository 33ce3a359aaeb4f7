"""Pose refinement: registering bird's-eye views, the pose graph, and `refine_poses`."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from mapbuilder.camera import Calibration, ground_homography
from mapbuilder.geo import LocalFrame
from mapbuilder.tiles import posegraph
from mapbuilder.tiles.bev import FramePose
from mapbuilder.tiles.build import PosedFrame
from mapbuilder.tiles.constraints import Gates, LaneLine, RegistrationMemo, receiver_step
from mapbuilder.tiles.posegraph import (
    Anchored,
    Edges,
    GraphSettings,
    Lanes,
    Observed,
    solve,
    wrap,
)
from mapbuilder.tiles.poses import CatalogPose
from mapbuilder.tiles.refine import (
    Anchor,
    Drive,
    PoseRefinementError,
    RefineSettings,
    refine_poses,
    refine_sequences,
)
from mapbuilder.tiles.refine_inputs import FrameInputs, SequenceInputs, odometry
from mapbuilder.tiles.refiner import REGISTERED, NotRefinedError, pose_refiner
from mapbuilder.tiles.register import GroundViewer, RelativeMotion, register_pair
from roadswarm.sim.gnss import GnssOptions, simulate_fixes

LON, LAT = 24.9384, 60.1699
CAMERA = Calibration(width_px=960, height_px=540)
CELL_M = 0.05
TEXTURE_M = 160.0  # the ground texture spans -80..80 m east and north
STOP_S = 5.0


@pytest.fixture(scope="module")
def texture() -> NDArray[np.float32]:
    """Asphalt-like noise with dashed white lines every 3.5 m, 5 cm per cell."""
    size = int(TEXTURE_M / CELL_M)
    noise = np.random.default_rng(5).uniform(60, 160, (size, size)).astype(np.float32)
    ground = np.asarray(cv2.GaussianBlur(noise, (0, 0), 1.5), np.float32)
    metres = (np.arange(size) + 0.5) * CELL_M - TEXTURE_M / 2
    lines = (np.abs((metres + 1.75) % 3.5 - 1.75) < 0.08)[np.newaxis, :]
    dashes = ((metres % 9.0) < 3.0)[:, np.newaxis]
    ground[np.broadcast_to(lines & dashes, ground.shape)] = 230
    return ground


def _render(
    ground: NDArray[np.float32],
    x: float,
    y: float,
    heading_deg: float,
    camera: Calibration = CAMERA,
) -> NDArray[np.uint8]:
    """What the camera at local (x, y) sees of the ground texture (grey, 0 above the horizon)."""
    inverse = np.linalg.inv(ground_homography(camera, x, y, heading_deg))
    cols, rows = np.meshgrid(np.arange(camera.width_px), np.arange(camera.height_px))
    pixels = np.stack([cols, rows, np.ones_like(cols)], axis=-1).reshape(-1, 3).T.astype(float)
    point = inverse @ pixels
    below = point[2] > 0  # rays that meet the ground in front of the camera
    with np.errstate(divide="ignore", invalid="ignore"):
        east, north = point[0] / point[2], point[1] / point[2]
    col = np.where(below, (east + TEXTURE_M / 2) / CELL_M - 0.5, -1)
    row = np.where(below, (TEXTURE_M / 2 - north) / CELL_M - 0.5, -1)
    shape = (camera.height_px, camera.width_px)
    image = cv2.remap(
        ground,
        col.reshape(shape).astype(np.float32),
        row.reshape(shape).astype(np.float32),
        cv2.INTER_LINEAR,
    )
    return np.clip(image, 0, 255).astype(np.uint8)


def _relative(a: tuple[float, float, float], b: tuple[float, float, float]) -> RelativeMotion:
    """b's pose in a's camera frame (right, forward, turn)."""
    h = math.radians(a[2])
    dx, dy = b[0] - a[0], b[1] - a[1]
    return RelativeMotion(
        dx * math.cos(h) - dy * math.sin(h), dx * math.sin(h) + dy * math.cos(h), b[2] - a[2], 1.0
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [((0.0, -20.0, 0.0), (0.2, -16.1, 1.2)), ((3.0, -10.0, 30.0), (5.0, -6.7, 28.5))],
)
def test_registration_recovers_a_known_shift_and_turn(
    texture: NDArray[np.float32],
    first: tuple[float, float, float],
    second: tuple[float, float, float],
) -> None:
    """Two views 4 m apart register to their true relative pose within 5 cm and 0.2 degrees."""
    viewer = GroundViewer(CAMERA)
    a, b = viewer.view(_render(texture, *first)), viewer.view(_render(texture, *second))
    truth = _relative(first, second)
    found = register_pair(viewer.grid, a, b, RelativeMotion(0.0, 4.0, 0.0, 0.0))
    assert found.response > 0.5
    # Sideways within 2 cm; along the road the views' blur, growing with distance, leaves a few.
    assert abs(found.right_m - truth.right_m) < 0.02
    assert math.hypot(found.right_m - truth.right_m, found.forward_m - truth.forward_m) < 0.05
    assert abs(found.turn_deg - truth.turn_deg) < 0.2


def _posed(images: list[NDArray[np.uint8]], poses: list[FramePose]) -> list[PosedFrame]:
    """Frames held in memory, with the given poses."""
    return [
        PosedFrame(str(k), pose, partial(np.asarray, image))
        for k, (image, pose) in enumerate(zip(images, poses, strict=True))
    ]


def _drive(count: int) -> NDArray[np.float64]:
    """True (x, y, heading) every 4 m along a gentle left curve from (0, -60) going north."""
    s = np.arange(count) * 4.0
    heading = -0.15 * s  # degrees: 0.15 degrees per metre to the left
    x = np.cumsum(4.0 * np.sin(np.radians(heading))) - 4.0 * math.sin(0.0)
    y = -60.0 + np.cumsum(4.0 * np.cos(np.radians(heading))) - 4.0
    return np.stack([x, y, heading % 360.0], axis=1)


def _noisy_poses(truth: NDArray[np.float64], seed: int, jitter_m: float = 0.5) -> list[FramePose]:
    """GNSS-like poses: `jitter_m` per axis and 1.5 degrees of heading noise."""
    rng = np.random.default_rng(seed)
    local = LocalFrame(LON, LAT)
    x = truth[:, 0] + rng.normal(0.0, jitter_m, len(truth))
    y = truth[:, 1] + rng.normal(0.0, jitter_m, len(truth))
    lon, lat = local.to_wgs84(x, y)
    heading = truth[:, 2] + rng.normal(0.0, 1.5, len(truth))
    return [
        FramePose(float(lo), float(la), float(h) % 360.0, k / 3.0)
        for k, (lo, la, h) in enumerate(zip(lon, lat, heading, strict=True))
    ]


def _offsets(poses: list[FramePose], truth: NDArray[np.float64]) -> NDArray[np.float64]:
    """Position errors (east, north) against the truth, one row per frame."""
    x, y = LocalFrame(LON, LAT).to_local(
        np.array([p.lon for p in poses]), np.array([p.lat for p in poses])
    )
    return np.stack([x - truth[:, 0], y - truth[:, 1]], axis=1)


def _errors(poses: list[FramePose], truth: NDArray[np.float64]) -> tuple[float, float]:
    """Median position error and median error of the step between consecutive frames."""
    ex, ey = _offsets(poses, truth).T
    return float(np.median(np.hypot(ex, ey))), float(np.median(np.hypot(np.diff(ex), np.diff(ey))))


def test_refinement_pulls_a_jittered_drive_back_towards_the_truth(
    texture: NDArray[np.float32],
) -> None:
    """Registration removes GNSS jitter: the step error shrinks 5x and the position error 2x."""
    truth = _drive(20)
    images = [_render(texture, *pose) for pose in truth]
    noisy = _noisy_poses(truth, seed=2)
    result = refine_poses(_posed(images, noisy), CAMERA)
    assert result.pairs_used >= 0.6 * result.pairs_tried
    before, after = _errors(noisy, truth), _errors(result.poses, truth)
    assert after[1] < before[1] / 5
    assert after[0] < before[0] / 2


def test_the_tile_pipeline_seam_refines_each_camera_run(texture: NDArray[np.float32]) -> None:
    """`pose_refiner` returns the same frames in order, registered poses closer to the truth."""
    truth = _drive(8)
    images = {str(k): _render(texture, *pose) for k, pose in enumerate(truth)}
    noisy = _noisy_poses(truth, seed=4)
    found = [CatalogPose(str(k), pose, "cam-1") for k, pose in enumerate(noisy)]
    refine = pose_refiner(images.__getitem__, lambda _: CAMERA)
    refined = refine(found)
    assert [p.frame_id for p in refined] == [p.frame_id for p in found]
    assert {p.source for p in refined} == {REGISTERED}
    before, after = _errors(noisy, truth), _errors([p.pose for p in refined], truth)
    assert after[1] < before[1] / 3


def test_the_seam_refuses_a_single_frame_with_a_reason() -> None:
    """One frame has nothing to be registered with: `NotRefinedError` says so."""
    image = np.zeros((CAMERA.height_px, CAMERA.width_px), np.uint8)
    refine = pose_refiner(lambda _: image, lambda _: CAMERA)
    with pytest.raises(NotRefinedError, match="no neighbour") as caught:
        refine([CatalogPose("a", FramePose(LON, LAT, 0.0, 1.0), "cam-1")])
    assert caught.value.reason == "too_few_frames"


def test_two_drives_over_one_road_are_aligned_to_each_other(
    texture: NDArray[np.float32],
) -> None:
    """Two drives whose GNSS is biased 1 m apart either way: registered with each other, they
    agree within 10 cm and their median error falls below half the bias."""
    truth = _drive(14)
    images = [_render(texture, *pose) for pose in truth]
    second = truth + np.array([0.4, 1.3, 0.0])  # the next day, a little to the side and on
    later = [_render(texture, *pose) for pose in second]
    drives, truths = [], [truth, second]
    for k, (frames, east) in enumerate(((images, 1.0), (later, -1.0))):
        shifted = truths[k] + np.array([east, 0.5 * east, 0.0])
        poses = _noisy_poses(shifted, seed=10 + k, jitter_m=0.1)
        poses = [replace(p, time_s=p.time_s + 86_400.0 * k) for p in poses]
        drives.append(Drive(_posed(frames, poses)))
    results = refine_sequences(drives, CAMERA)
    assert results[0].cross_pairs_used >= 8
    errors = [
        _offsets([p for p in result.poses], t) for result, t in zip(results, truths, strict=True)
    ]
    disagreement = np.median(np.hypot(*(errors[0] - errors[1]).T))
    assert disagreement < 0.1
    assert all(np.median(np.hypot(*e.T)) < 0.5 for e in errors)


def test_a_drive_is_aligned_to_the_map_whose_poses_stay_fixed(
    texture: NDArray[np.float32],
) -> None:
    """Frames already in the map at their true poses anchor a new drive whose GNSS is biased
    1.2 m: its frames land within 10 cm of the map, where alone they stay near the bias."""
    truth = _drive(14)
    lon, lat = LocalFrame(LON, LAT).to_wgs84(truth[:, 0], truth[:, 1])
    map_poses = [
        FramePose(float(lo), float(la), h, 0.0)
        for lo, la, h in zip(lon, lat, truth[:, 2], strict=True)
    ]
    anchors = [
        Anchor(PosedFrame(f"map-{k}", pose, partial(_render, texture, *truth[k])), CAMERA, "map")
        for k, pose in enumerate(map_poses)
    ]
    later = truth + np.array([0.4, 1.3, 0.0])
    images = [_render(texture, *pose) for pose in later]
    biased = _noisy_poses(later + np.array([1.0, 0.6, 0.0]), seed=12, jitter_m=0.1)
    drive = Drive(_posed(images, biased))
    alone = refine_sequences([drive], CAMERA)[0]
    aligned = refine_sequences([drive], CAMERA, anchors=anchors)[0]
    assert aligned.anchor_pairs_tried == 14 and aligned.anchor_pairs_used >= 10
    assert alone.anchor_pairs_tried == alone.anchor_pairs_used == 0
    assert np.median(np.hypot(*_offsets(alone.poses, later).T)) > 0.8
    assert np.median(np.hypot(*_offsets(aligned.poses, later).T)) < 0.1


def _out_and_back(count: int) -> NDArray[np.float64]:
    """North up the right-hand lane of a road for `count` frames 4 m apart, then back south
    down the other lane (the turn between them left out)."""
    y = -50.0 + np.arange(count) * 4.0
    out = np.stack([np.full(count, -1.75), y, np.zeros(count)], axis=1)
    back = np.stack([np.full(count, 1.75), y[::-1], np.full(count, 180.0)], axis=1)
    return np.concatenate([out, back])


def test_the_way_back_from_a_dead_end_is_registered_with_the_way_out(
    texture: NDArray[np.float32],
) -> None:
    """The receiver's error is 0.8 m ahead on the way out and 0.8 m behind on the way back,
    which no frame of either way can see. Coming back, the camera sees from the far side the
    ground it saw going out: those frames are registered with each other and the two ways
    agree within 15 cm; with the revisit gate shut they stay 1.6 m apart. A 1080p camera: at
    540 rows the far half of a view is too blurred to match the near half of another."""
    count = 14
    truth = _out_and_back(count)
    camera = Calibration(width_px=1920, height_px=1080)
    images = [_render(texture, x, y, h, camera=camera) for x, y, h in truth]
    bias = np.where(np.arange(2 * count) < count, 0.8, -0.8)
    poses = _noisy_poses(truth + np.stack([0 * bias, bias, 0 * bias], axis=1), 8, jitter_m=0.1)

    def disagreement(settings: RefineSettings | None) -> tuple[float, int]:
        result = refine_poses(_posed(images, poses), camera, settings=settings)
        north = _offsets(result.poses, truth)[:, 1]
        gap = float(np.median(north[:count]) - np.median(north[count:]))
        return gap, result.revisit_pairs_used

    apart, none_used = disagreement(RefineSettings(gates=Gates(revisit_min_gap=10_000)))
    assert none_used == 0 and apart > 1.2
    gap, used = disagreement(None)
    assert used >= 6
    assert abs(gap) < 0.15


def test_featureless_road_is_not_registered() -> None:
    """Flat asphalt with sensor noise gives low responses: no pair passes the gate, and the
    poses stay near GNSS."""
    rng = np.random.default_rng(9)
    truth = _drive(6)
    flat = np.full((CAMERA.height_px, CAMERA.width_px), 110.0)
    images = [np.clip(flat + rng.normal(0, 2, flat.shape), 0, 255).astype(np.uint8) for _ in truth]
    noisy = _noisy_poses(truth, seed=3)
    result = refine_poses(_posed(images, noisy), CAMERA)
    assert result.pairs_tried == 9 and result.pairs_used == 0
    local = LocalFrame(LON, LAT)
    before = local.to_local(np.array([p.lon for p in noisy]), np.array([p.lat for p in noisy]))
    after = local.to_local(
        np.array([p.lon for p in result.poses]), np.array([p.lat for p in result.poses])
    )
    # Only GNSS smoothing moves them: within three standard deviations of its 0.5 m jitter.
    assert float(np.max(np.hypot(*(np.subtract(after, before))))) < 1.5


def test_a_long_pause_unlinks_the_frames_around_it() -> None:
    """After a two-minute pause on another road, frames are not pulled towards the old one."""
    north = np.stack([np.zeros(5), np.arange(5) * 4.0, np.zeros(5)], axis=1)
    east = np.stack([50.0 + np.arange(5) * 4.0, np.full(5, 30.0), np.full(5, 90.0)], axis=1)
    truth = np.concatenate([north, east])
    poses = _noisy_poses(truth, seed=6, jitter_m=0.2)
    poses = [replace(p, time_s=p.time_s + (120.0 if k >= 5 else 0.0)) for k, p in enumerate(poses)]
    flat = np.full((CAMERA.height_px, CAMERA.width_px), 110, np.uint8)
    result = refine_poses(_posed([flat] * len(poses), poses), CAMERA)
    assert result.pairs_used == 0
    assert _errors(result.poses, truth)[0] < 0.5


def test_bad_sequences_are_refused_with_a_reason() -> None:
    """One frame, or times that go back, is a clear error."""
    image = np.zeros((CAMERA.height_px, CAMERA.width_px), np.uint8)
    pose = FramePose(LON, LAT, 0.0, 10.0)
    with pytest.raises(PoseRefinementError, match="at least 2 frames"):
        refine_poses(_posed([image], [pose]), CAMERA)
    earlier = FramePose(LON, LAT, 0.0, 9.0)
    with pytest.raises(PoseRefinementError, match="sort the frames"):
        refine_poses(_posed([image, image], [pose, earlier]), CAMERA)


def _l_shaped_truth(step_m: float) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Dense true trajectory at 10 Hz and 12 m/s: 600 m east, a quarter turn of radius 20 m,
    600 m north, as rows (t, x, y, heading); and the indices of a keyframe every `step_m`."""
    s = np.arange(0.0, 1231.4, 1.2)
    arc_start, arc_end = 600.0, 600.0 + math.pi * 10.0
    phase = np.clip((s - arc_start) / (arc_end - arc_start), 0.0, 1.0) * math.pi / 2
    heading = 90.0 - np.degrees(phase)
    x = np.cumsum(np.sin(np.radians(heading)) * 1.2)
    y = np.cumsum(np.cos(np.radians(heading)) * 1.2)
    dense = np.stack([s / 12.0, x, y, heading], axis=1)
    keys = np.flatnonzero(np.diff(np.floor(s / step_m), prepend=-1) > 0)
    return dense, keys


def _registrations(truth: NDArray[np.float64], rng: np.random.Generator) -> Edges:
    """Each keyframe against the next two, 2 cm and 0.1 degree of noise, a fifth of the pairs
    lost (low response)."""
    n = len(truth)
    i = np.concatenate([np.arange(n - 1), np.arange(n - 2)])
    j = np.concatenate([np.arange(1, n), np.arange(2, n)])
    keep = rng.random(i.size) < 0.8
    i, j = i[keep], j[keep]
    x, y, h = truth[:, 0], truth[:, 1], np.radians(truth[:, 2])
    dx, dy = x[j] - x[i], y[j] - y[i]
    return Edges(
        i,
        j,
        dx * np.cos(h[i]) - dy * np.sin(h[i]) + rng.normal(0, 0.02, i.size),
        dx * np.sin(h[i]) + dy * np.cos(h[i]) + rng.normal(0, 0.02, i.size),
        wrap(h[j] - h[i]) + np.radians(rng.normal(0, 0.1, i.size)),
    )


def _lanes_on_straights(truth: NDArray[np.float64]) -> Lanes:
    """Frames on the two straight legs lie on their lane lines (y = 0 east, x = const north)."""
    x, y, h = truth[:, 0], truth[:, 1], truth[:, 2]
    east, north = np.abs(h - 90.0) < 0.01, np.abs(h) < 0.01
    k = np.flatnonzero(east | north)
    return Lanes(k, x[k], y[k], np.where(east[k], 0.0, 1.0), np.where(east[k], 1.0, 0.0))


def _graph_errors(refined: NDArray[np.float64], truth: NDArray[np.float64]) -> tuple[float, float]:
    """Median position error and median error of the step between consecutive keyframes."""
    ex, ey = refined[:, 0] - truth[:, 0], refined[:, 1] - truth[:, 1]
    return float(np.median(np.hypot(ex, ey))), float(np.median(np.hypot(np.diff(ex), np.diff(ey))))


def test_pose_graph_removes_jitter_and_lanes_remove_the_bias() -> None:
    """On an L-shaped drive with the simulator's correlated 3 m GNSS error (and 2 degrees of
    heading error): registration shrinks the step error 5x; lane lines on both legs bring the
    median position error from metres to under 0.5 m (the turn pins the position along each)."""
    dense, keys = _l_shaped_truth(4.0)
    fixes = simulate_fixes(
        dense[:, 0],
        dense[:, 1],
        dense[:, 2],
        np.zeros(len(dense)),
        np.full(len(dense), 12.0),
        dense[:, 3],
        frame=LocalFrame(LON, LAT),
        start_time=datetime(2026, 6, 1, tzinfo=UTC),
        options=GnssOptions(rate_hz=10.0, noise_m=3.0),
        rng=np.random.default_rng(4),
    )
    truth = dense[keys, 1:]
    error = np.array([[fixes[k].error_east_m, fixes[k].error_north_m] for k in keys])
    rng = np.random.default_rng(5)
    observed = Observed(
        truth[:, 0] + error[:, 0],
        truth[:, 1] + error[:, 1],
        np.radians(truth[:, 2] + rng.normal(0.0, 2.0, len(keys))),
        dense[keys, 0],
        np.ones(len(keys)),
        # Doppler speed integrated between frames: 0.1 m/s of noise per 10 Hz fix.
        np.concatenate(
            [[np.nan], np.diff(keys) * 0.1 * np.array([fixes[k].speed_mps for k in keys])[1:]]
        ),
    )
    edges = _registrations(truth, rng)
    no_lanes = Lanes(np.zeros(0, np.int64), *(np.zeros(0),) * 4)
    raw = _graph_errors(np.stack([observed.x, observed.y], axis=1), truth)
    jitter_removed = _graph_errors(solve(observed, edges, no_lanes, GraphSettings()), truth)
    anchored = _graph_errors(
        solve(observed, edges, _lanes_on_straights(truth), GraphSettings()), truth
    )
    assert jitter_removed[1] < raw[1] / 5
    assert anchored[0] < 0.5 < raw[0]


def _stop_before_the_turn(stop_s: float) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The L-shaped drive (`_l_shaped_truth`, a keyframe every 4 m) with the car standing
    `stop_s` where the turn begins (at a junction), as rows (t, x, y, heading, speed); and the
    indices of the keyframes."""
    dense, keys = _l_shaped_truth(4.0)
    corner = int(np.searchsorted(dense[:, 0], 600.0 / 12.0))
    standing = np.repeat(dense[corner : corner + 1], int(stop_s), axis=0)
    standing[:, 0] += np.arange(int(stop_s))
    after = dense[corner:] + np.array([stop_s, 0.0, 0.0, 0.0])
    rows = np.concatenate([dense[:corner], standing, after])
    speed = np.concatenate(
        [np.full(corner, 12.0), np.zeros(int(stop_s)), np.full(len(after), 12.0)]
    )
    moved = np.where(keys < corner, keys, keys + int(stop_s))
    return np.concatenate([rows, speed[:, np.newaxis]], axis=1), moved


def _first_leg_along_errors(seed: int) -> tuple[float, float]:
    """Median error along the road of the first leg's keyframes, refined with the keyframes'
    speeds and with the device's odometry: correlated 3 m GNSS error (seed `seed`), a 30 s stop
    where the turn begins, no registration across the stop (the view changed while the car
    stood, as at a sharp corner), lane lines on both legs."""
    dense, keys = _stop_before_the_turn(STOP_S)
    fixes = simulate_fixes(
        dense[:, 0],
        dense[:, 1],
        dense[:, 2],
        np.zeros(len(dense)),
        dense[:, 4],
        dense[:, 3],
        frame=LocalFrame(LON, LAT),
        start_time=datetime(2026, 6, 1, tzinfo=UTC),
        options=GnssOptions(rate_hz=10.0, noise_m=3.0),
        rng=np.random.default_rng(seed),
    )
    truth, times = dense[keys, 1:4], dense[keys, 0]
    error = np.array([[fixes[k].error_east_m, fixes[k].error_north_m] for k in keys])
    rng = np.random.default_rng(seed + 1)
    base = Observed(
        truth[:, 0] + error[:, 0],
        truth[:, 1] + error[:, 1],
        np.radians(truth[:, 2] + rng.normal(0.0, 2.0, len(keys))),
        times,
        np.ones(len(keys)),
        np.full(len(keys), np.nan),
    )
    driven = np.hypot(*np.diff(truth[:, :2], axis=0).T) + rng.normal(0, 0.02, len(keys) - 1)
    # The keyframes' speeds (12 m/s, 0.1 m/s of noise) give only the steps at most 2 s long.
    dt = np.diff(times)
    speeds = np.where(dt <= 2.0, dt * (12.0 + rng.normal(0, 0.1, dt.size)), np.nan)
    stop = int(np.argmax(dt))  # the step from keyframe `stop` to the next spans the stop
    edges = _registrations(truth, rng)
    kept = (edges.i > stop) | (edges.j <= stop)
    not_across = Edges(*(getattr(edges, name)[kept] for name in Edges.__dataclass_fields__))
    lanes = _lanes_on_straights(truth)
    first_leg = np.arange(stop + 1)

    def along_error(observed: Observed) -> float:
        refined = solve(observed, not_across, lanes, GraphSettings())
        return float(np.median(np.abs(refined[first_leg, 0] - truth[first_leg, 0])))

    with_speeds = along_error(replace(base, step_m=np.concatenate([[np.nan], speeds])))
    odometer = np.concatenate([[False], np.ones(driven.size, bool)])
    with_odometry = along_error(
        replace(base, step_m=np.concatenate([[np.nan], driven]), from_odometer=odometer)
    )
    return with_odometry, with_speeds


def test_registration_starts_from_the_chords_of_the_steps_driven() -> None:
    """Round a bend, frame j lies off frame i's axis: the guess registration starts from puts
    it there, along the chord of each step driven, whatever the fixes' jitter; without the
    distance driven it falls back on the distance between the fixes."""
    radius, step = 8.0, 4.0
    angle = np.arange(4, dtype=np.float64) * step / radius  # every 4 m of a circle, turning right
    x, y = radius * (1 - np.cos(angle)), radius * np.sin(angle)
    jitter = np.array([0.0, 0.4, -0.3, 0.5])
    driven = np.array([np.nan, step, step, step])
    observed = Observed(x + jitter, y - jitter, angle, np.arange(4.0), np.ones(4), driven)
    for j in (1, 2, 3):
        guess = receiver_step(observed, 0, j)
        assert guess.right_m == pytest.approx(x[j], abs=1e-9)
        assert guess.forward_m == pytest.approx(y[j], abs=1e-9)
        assert guess.turn_deg == pytest.approx(math.degrees(angle[j]))
    unknown = replace(observed, step_m=np.full(4, np.nan))
    fixes_apart = math.hypot(x[1] - x[0] + 0.4, y[1] - y[0] - 0.4)
    guess = receiver_step(unknown, 0, 1)
    assert math.hypot(guess.right_m, guess.forward_m) == pytest.approx(fixes_apart)
    assert guess.right_m == pytest.approx(fixes_apart * math.sin(angle[1] / 2))


def test_the_pose_graph_derivatives_match_finite_differences() -> None:
    """Every block of residuals (registrations, GNSS and its bias, heading, motion, lanes and
    map anchors) has the derivatives that central differences give."""
    rng = np.random.default_rng(4)
    n = 6
    s = np.arange(n) * 4.0
    observed = Observed(
        s * 0.1 + rng.normal(0, 0.3, n),
        s + rng.normal(0, 0.3, n),
        rng.normal(0.1, 0.05, n),
        np.linspace(0.0, 2.5, n),
        np.ones(n),
        np.full(n, 4.0),
    )
    edges = Edges(
        np.array([0, 1, 2]),
        np.array([1, 3, 4]),
        rng.normal(0, 0.2, 3),
        np.array([4.0, 8, 8]),
        rng.normal(0, 0.02, 3),
    )
    lanes = Lanes(np.array([2]), np.array([0.5]), np.array([8.0]), np.array([1.0]), np.array([0.0]))
    anchored = Anchored(
        np.array([0, 5]),
        np.array([0.3, 2.0]),
        np.array([-1.0, 17.0]),
        np.array([0.05, 0.15]),
        np.array([0.1, -0.2]),
        np.array([1.0, 3.2]),
        np.array([0.02, -0.01]),
    )
    graph = posegraph._Graph(observed, edges, lanes, anchored, GraphSettings())
    v = np.concatenate([observed.x, observed.y, observed.heading_rad, rng.normal(0, 0.5, 2 * n)])
    v += rng.normal(0, 0.05, v.size)
    _, jacobian = graph.linearise(v)
    step = 1e-6
    numeric = np.stack(
        [
            (graph.linearise(v + step * e)[0] - graph.linearise(v - step * e)[0]) / (2 * step)
            for e in np.eye(v.size)
        ],
        axis=1,
    )
    assert np.abs(jacobian.toarray() - numeric).max() < 1e-4 * np.abs(numeric).max()


def test_odometry_carries_the_turns_pin_along_the_road_across_a_stop() -> None:
    """Across a stop the keyframes' speeds say nothing about the step, so the first leg's
    position along the road is left to the GNSS bias; the device's odometry spans the stop and
    the second leg's lane line pins it to a few decimetres."""
    with_odometry, with_speeds = _first_leg_along_errors(seed=11)
    assert with_odometry < 0.5 < 1.0 < with_speeds
    assert with_odometry < with_speeds / 3


def test_drive_steps_take_the_odometry_and_fall_back_to_speeds() -> None:
    """A step is the odometry's where both frames have it, else the speed-based step."""
    image = np.zeros((2, 2), np.uint8)
    poses = [FramePose(LON, LAT, 0.0, float(k)) for k in range(5)]
    drive = Drive(
        _posed([image] * 5, poses),
        travelled_m=[100.0, 104.0, None, 112.0, 116.5],
        step_m=[None, 3.9, 4.1, 4.2, 3.8],
    )
    steps, from_odometer = drive.steps()
    np.testing.assert_allclose(steps, [np.nan, 4.0, 4.1, 4.2, 4.5])
    assert from_odometer.tolist() == [False, True, False, False, True]


def _inputs(travelled: list[float | None], indices: list[int]) -> SequenceInputs:
    """A sequence's inputs with the given odometry and sequence indices (the rest plain)."""
    frames = [
        FrameInputs(f"k{k}", LON, LAT, 0.0, 1.0, 8.0, index, metres, None, None)
        for k, (metres, index) in enumerate(zip(travelled, indices, strict=True))
    ]
    return SequenceInputs(("device", "trip"), frames, [], {})


def test_odometry_that_goes_back_or_races_is_ignored_with_the_reason() -> None:
    """Used as sent when it only grows; none when no frame has it; ignored, saying where, when
    it goes back with the sequence index or implies a step faster than any car."""
    found = [CatalogPose(f"k{k}", FramePose(LON, LAT, 0.0, k * 0.5), "cam") for k in range(4)]
    good = odometry(found, _inputs([10.0, 14.0, None, 22.0], [0, 1, 2, 3]))
    assert (good.status, good.travelled_m) == ("used", [10.0, 14.0, None, 22.0])
    assert odometry(found, _inputs([None] * 4, [0, 1, 2, 3])).status is None
    back = odometry(found, _inputs([10.0, 14.0, 13.0, 22.0], [0, 1, 2, 3]))
    assert (back.status, back.travelled_m) == ("odometry_backwards", [None] * 4)
    assert "from 14 m at index 1 to 13 m at index 2" in back.detail
    racing = odometry(found, _inputs([10.0, 14.0, 90.0, 94.0], [0, 1, 2, 3]))
    assert racing.status == "odometry_too_fast" and "76 m in 0.5 s" in racing.detail


def test_the_registration_memo_keeps_its_bound_and_tells_cameras_apart() -> None:
    """The oldest pair goes past the bound, a pair read again stays, and a viewer of another
    camera (another remap table) has another fingerprint, so its pairs are not mixed up."""
    memo = RegistrationMemo(max_pairs=2)
    viewer = GroundViewer(CAMERA)
    motion = RelativeMotion(0.1, 4.0, 0.5, 0.9)
    guess = RelativeMotion(0.0, 4.0, 0.0, 0.0)
    keys = [(f"a{k}", f"b{k}", viewer.fingerprint, guess) for k in range(3)]
    memo.put(keys[0], motion)
    memo.put(keys[1], motion)
    assert memo.get(keys[0]) == motion  # read again: now the newest
    memo.put(keys[2], motion)
    assert [memo.get(key) is not None for key in keys] == [True, False, True]
    pitched = GroundViewer(replace(CAMERA, pitch_deg=CAMERA.pitch_deg + 1.0))
    assert pitched.fingerprint != viewer.fingerprint
    assert GroundViewer(CAMERA).fingerprint == viewer.fingerprint


def _unreadable() -> NDArray[np.uint8]:
    raise AssertionError("a frame was decoded again")


def test_a_sequence_on_a_road_of_several_lanes_refined_again_decodes_no_frame(
    texture: NDArray[np.float32],
) -> None:
    """With the registration memo, refining the same frames again finds every pair and every
    frame's solid lines there: no frame is decoded, and the poses are the same."""
    truth = _drive(8)
    noisy = _noisy_poses(truth, seed=4)
    lon, lat = LocalFrame(LON, LAT).to_wgs84(np.array([1.75, 1.75]), np.array([-80.0, 0.0]))
    lanes = [LaneLine(tuple(lon), tuple(lat), from_right, 2, 3.5) for from_right in (0, 1)]
    memo = RegistrationMemo()
    images = [_render(texture, *pose) for pose in truth]
    first = refine_sequences([Drive(_posed(images, noisy))], CAMERA, lanes=lanes, memo=memo)
    again = [PosedFrame(f.frame_id, f.pose, _unreadable) for f in _posed(images, noisy)]
    second = refine_sequences([Drive(again)], CAMERA, lanes=lanes, memo=memo)
    assert second[0].poses == first[0].poses
