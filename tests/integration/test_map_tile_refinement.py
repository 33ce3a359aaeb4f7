"""Pose refinement inside the tile pipeline: a simulated drive whose GNSS is off, put in the
catalog, matched by the real matcher, posed and built as `roadswarm map tiles build` does."""

from __future__ import annotations

import bisect
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update

from ingest.catalog import Frame, FrameState
from ingest.db import Catalog
from ingest.protocol import frame_object_key
from ingest.states import SequenceKey
from ingest.storage import LocalObjectStore
from mapbuilder.geo import LocalFrame
from mapbuilder.settings import MatchSettings, TileSettings
from mapbuilder.tiles import constraints, posing
from mapbuilder.tiles.catalog import FramePoseRow, PoseRefinement
from mapbuilder.tiles.context import TileContext
from mapbuilder.tiles.operations import build_imagery, tiles_status
from mapbuilder.tiles.poses import poses_for
from mapbuilder.tiles.posing import pending_sequences, update_poses
from mapbuilder.tiles.refiner import CatalogRefiner
from mapbuilder.tiles.register import RelativeMotion, register_pair
from roadswarm.sim.world import World
from tests.ingest_helpers import catalog_at
from tests.tile_helpers import (
    Keyframe,
    calibration_of,
    keyframes,
    match,
    reencoded,
    seed_drive,
    simulated,
    store_world_roads,
    with_gnss_error,
)

DEVICE = "device-a"
LATER_DEVICE = "device-b"
SEQUENCE = "seq"


@pytest.fixture(scope="module")
def sharp_drive(grid_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-second drive at 1280x720 (at 640x360 the ground is too blurred to register)."""
    folder = tmp_path_factory.mktemp("sharp-drive")
    return simulated(
        grid_world, folder, minutes=0.5, seed=5, fps=15.0, width_px=1280, height_px=720
    )


@pytest.fixture(scope="module")
def truth(grid_world: World, sharp_drive: Path) -> list[Keyframe]:
    """The drive's keyframes every 4 m, at their true poses."""
    return keyframes(grid_world, sharp_drive)


@pytest.fixture(scope="module")
def reported(truth: list[Keyframe]) -> list[Keyframe]:
    """The same keyframes as a receiver reports them: 1.2 m east and 0.8 m south of the truth,
    0.4 m of jitter, 1.5 degrees of heading noise."""
    return with_gnss_error(truth, bias_m=(1.2, -0.8), jitter_m=0.4, heading_deg=1.5, seed=7)


@pytest.fixture
def ctx(sqlite_catalog: Catalog, tmp_path: Path, grid_world: World) -> TileContext:
    """A tile context over a SQLite catalog holding the world's roads, and a local store."""
    store_world_roads(sqlite_catalog, grid_world)
    return TileContext(sqlite_catalog, LocalObjectStore(tmp_path / "store"))


@pytest.fixture(params=["sqlite", "postgresql"])
def either_ctx(
    request: pytest.FixtureRequest, tmp_path: Path, grid_world: World
) -> Iterator[TileContext]:
    """`ctx` on SQLite and on PostgreSQL (for the queries whose SQL differs between them)."""
    with catalog_at(request.param, tmp_path) as catalog:
        store_world_roads(catalog, grid_world)
        yield TileContext(catalog, LocalObjectStore(tmp_path / "store"))


def _seed(
    ctx: TileContext,
    frames: list[Keyframe],
    drive: Path,
    first_index: int = 0,
    *,
    device: str = DEVICE,
    start: datetime | None = None,
) -> SequenceKey:
    """Put frames of the test's sequence (of `device`, captured from `start`) in the catalog
    and the store, and match it."""
    key = seed_drive(
        ctx.catalog,
        ctx.store,
        frames,
        device_id=device,
        sequence_id=SEQUENCE,
        camera=calibration_of(drive),
        start=start,
        first_index=first_index,
    )
    match(ctx.catalog, [key])
    return key


def _stored(catalog: Catalog) -> dict[str, FramePoseRow]:
    with catalog.session() as session:
        rows = list(session.scalars(select(FramePoseRow)))
        session.expunge_all()
    return {row.frame_id: row for row in rows}


def _refinement(catalog: Catalog, key: SequenceKey = (DEVICE, SEQUENCE)) -> PoseRefinement:
    with catalog.session() as session:
        row = session.get(PoseRefinement, key)
        assert row is not None
        session.expunge(row)
        return row


@dataclass(frozen=True)
class Errors:
    """Median position errors against the truth (metres): along the road, across it, and of
    the step between consecutive frames (what doubles markings)."""

    along: float
    across: float
    step: float


def _offsets(
    poses: dict[str, tuple[float, float]], truth: list[Keyframe]
) -> tuple[np.ndarray, np.ndarray, list[Keyframe]]:
    """East and north metres of `poses` (lon, lat by frame id) from the truth, over the frames
    that have one (returned too)."""
    local = LocalFrame(truth[0].lon, truth[0].lat)
    known = [f for f in truth if f.frame_id in poses]
    tx, ty = local.to_local(np.array([f.lon for f in known]), np.array([f.lat for f in known]))
    px, py = local.to_local(
        np.array([poses[f.frame_id][0] for f in known]),
        np.array([poses[f.frame_id][1] for f in known]),
    )
    return px - tx, py - ty, known


def _errors(poses: dict[str, tuple[float, float]], truth: list[Keyframe]) -> Errors:
    """The errors of `poses` (lon, lat by frame id) over the frames that have one."""
    ex, ey, known = _offsets(poses, truth)
    heading = np.radians([f.heading_deg for f in known])
    along = ex * np.sin(heading) + ey * np.cos(heading)
    across = ex * np.cos(heading) - ey * np.sin(heading)
    return Errors(
        float(np.median(np.abs(along))),
        float(np.median(np.abs(across))),
        float(np.median(np.hypot(np.diff(ex), np.diff(ey)))),
    )


def test_the_pipeline_builds_tiles_from_refined_poses(
    ctx: TileContext, reported: list[Keyframe], truth: list[Keyframe], sharp_drive: Path
) -> None:
    """`map tiles build` refines the sequence: every pose registered, much nearer the truth
    than the smoothed GNSS track, and a second run refines nothing again."""
    _seed(ctx, reported, sharp_drive)
    smoothed = poses_for(
        ctx.catalog,
        [(DEVICE, SEQUENCE)],
        max_offroad_m=TileSettings().max_offroad_m,
        options=MatchSettings().sequence_options(),
    )
    run = build_imagery(ctx)
    assert run.sequences_refined == 1 and run.summary.written[21] > 10
    stored = _stored(ctx.catalog)
    assert len(stored) == len(smoothed.posed) > 20
    assert {row.source for row in stored.values()} == {"registered"}
    refinement = _refinement(ctx.catalog)
    assert refinement.outcome == "registered"
    assert refinement.odometry is None  # these frames, as an older device's, carry none
    assert refinement.pairs_used > refinement.pairs_tried / 2
    assert refinement.frames_on_lanes > 0
    before = _errors({p.frame_id: (p.pose.lon, p.pose.lat) for p in smoothed.posed}, truth)
    after = _errors({k: (row.lon, row.lat) for k, row in stored.items()}, truth)
    # Lanes pin the imagery sideways and registration the steps; along a road the bias stays
    # (only a turn or another drive can say where along it the imagery belongs).
    assert after.across < before.across / 5
    assert after.step < before.step / 3
    assert after.along < before.along + 0.1
    again = update_poses(ctx, [(DEVICE, SEQUENCE)])
    assert (again.refined, again.not_refined, again.tiles_marked) == (0, {}, 0)
    assert _refinement(ctx.catalog).refined_at == refinement.refined_at
    status = tiles_status(ctx.catalog)
    assert (status["sequences_refined"], status["sequences_not_refined"]) == (1, {})


@pytest.fixture(scope="module")
def avenue_drive(grid_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A drive that starts along the grid's avenue (two lanes each way, a solid centre line)."""
    folder = tmp_path_factory.mktemp("avenue-drive")
    return simulated(
        grid_world, folder, minutes=0.3, seed=0, fps=10.0, width_px=1280, height_px=720
    )


def test_on_a_road_of_two_lanes_each_way_the_lane_is_told_from_the_markings(
    ctx: TileContext, grid_world: World, avenue_drive: Path
) -> None:
    """The map cannot say which of the avenue's two lanes the car drove in; the solid lines
    beside it can (the edge line half a lane right, the centre line a lane and a half left), so
    the receiver's sideways bias is removed as on a road of one lane each way, even where the
    reported track lies nearer the other lane."""
    route = json.loads((avenue_drive / "truth.json").read_text())["route"]
    assert route[0]["segment_id"] in _avenue(grid_world)
    times = [f["t_s"] for f in json.loads((avenue_drive / "truth.json").read_text())["frames"]]
    on_avenue = keyframes(grid_world, avenue_drive, stop=bisect.bisect(times, route[0]["exit_s"]))
    # The avenue runs east: a bias north is sideways, and nearer the left lane than the right.
    reported = with_gnss_error(on_avenue, bias_m=(0.0, 2.2), jitter_m=0.3, heading_deg=1.0, seed=3)
    _seed(ctx, reported, avenue_drive)
    update = update_poses(ctx, [(DEVICE, SEQUENCE)])
    assert update.refined == 1
    assert _refinement(ctx.catalog).frames_on_lanes >= len(on_avenue) / 2
    before = _errors({f.frame_id: (f.lon, f.lat) for f in reported}, on_avenue)
    after = _errors({k: (row.lon, row.lat) for k, row in _stored(ctx.catalog).items()}, on_avenue)
    assert before.across > 2.0
    assert after.across < 0.25


def _avenue(world: World) -> set[str]:
    return {segment.segment_id for segment in world.segments if segment.lanes == 4}


def test_new_frames_refine_the_sequence_again_as_if_all_came_at_once(
    ctx: TileContext,
    reported: list[Keyframe],
    sharp_drive: Path,
    sqlite_catalog: Catalog,
    tmp_path: Path,
    grid_world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A later batch of the sequence invalidates its refinement; the poses then equal those of
    the whole sequence refined in one go (refinement does not depend on arrival order), though
    the second refinement registered only the pairs the batch added."""
    registered = Counter[str]()
    register = register_pair

    def counted(*args: Any, **kwargs: Any) -> RelativeMotion:
        registered[stage] += 1
        return register(*args, **kwargs)

    monkeypatch.setattr(constraints, "register_pair", counted)
    half = len(reported) // 2
    stage = "first batch"
    _seed(ctx, reported[:half], sharp_drive)
    first = update_poses(ctx, [(DEVICE, SEQUENCE)])
    digest = _refinement(ctx.catalog).inputs_sha256
    stage = "second batch"
    _seed(ctx, reported[half:], sharp_drive, first_index=half)
    second = update_poses(ctx, [(DEVICE, SEQUENCE)])
    assert (first.refined, second.refined) == (1, 1)
    assert _refinement(ctx.catalog).inputs_sha256 != digest
    assert second.posed == len(_stored(ctx.catalog))
    (tmp_path / "whole").mkdir()
    stage = "all at once"
    with catalog_at("sqlite", tmp_path / "whole") as whole:
        store_world_roads(whole, grid_world)
        at_once = TileContext(whole, LocalObjectStore(tmp_path / "whole-store"))
        _seed(at_once, reported, sharp_drive)
        update_poses(at_once, [(DEVICE, SEQUENCE)])
        assert _poses(whole) == _poses(ctx.catalog)
    # Each frame is registered with the next two: the batch added about two pairs a frame.
    added = len(reported) - half
    assert registered["second batch"] <= 2 * added + 4, registered
    assert registered["first batch"] + registered["second batch"] < 1.2 * registered["all at once"]


def test_a_sequence_matched_again_while_it_was_posed_is_posed_again(
    ctx: TileContext, reported: list[Keyframe], sharp_drive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers pose one sequence at once: one reads it before its second batch is matched,
    the other poses the whole sequence and stores first. The first then stores its poses of the
    first batch over the newer ones, and names the sequence to be posed again; posing it again
    gives the whole sequence's poses back."""
    plain = replace(ctx, settings=TileSettings(refine_poses=False))
    half = len(reported) // 2
    key = _seed(ctx, reported[:half], sharp_drive)
    read = poses_for
    whole: dict[str, tuple[float, float, float, str]] = {}

    def other_worker_stores_first(*args: Any, **kwargs: Any) -> Any:
        found = read(*args, **kwargs)
        monkeypatch.setattr(posing, "poses_for", read)
        _seed(ctx, reported[half:], sharp_drive, first_index=half)
        assert update_poses(plain, [key]).realign == []
        whole.update(_poses(ctx.catalog))
        return found

    monkeypatch.setattr(posing, "poses_for", other_worker_stores_first)
    late = update_poses(plain, [key])
    stale = _poses(ctx.catalog)
    assert len(whole) == len(reported) and stale.keys() == whole.keys()
    assert stale != whole, "the late worker should have stored its older poses"
    assert late.realign == [key]
    again = update_poses(plain, late.realign)
    assert (again.realign, _poses(ctx.catalog)) == ([], whole)


def _poses(catalog: Catalog) -> dict[str, tuple[float, float, float, str]]:
    return {
        k: (row.lon, row.lat, row.heading_deg, row.source) for k, row in _stored(catalog).items()
    }


def test_a_sequence_that_cannot_be_refined_keeps_smoothed_poses_and_says_why(
    ctx: TileContext, reported: list[Keyframe], sharp_drive: Path
) -> None:
    """A frame whose object is gone: the sequence keeps its smoothed poses, the reason names
    the frame, the tiles are built all the same (the builder quarantines the frame), and the
    sequence without it is refined once, then not tried again."""
    _seed(ctx, reported[:12], sharp_drive)
    ctx.store.delete(frame_object_key(DEVICE, reported[5].frame_id))
    run = build_imagery(ctx)
    assert (run.sequences_refined, run.sequences_not_refined) == (0, {"frame_unreadable": 1})
    assert run.summary.written[21] > 0
    assert {row.source for row in _stored(ctx.catalog).values()} == {"smoothed"}
    refinement = _refinement(ctx.catalog)
    assert refinement.outcome == "smoothed" and reported[5].frame_id in refinement.detail
    status = tiles_status(ctx.catalog)
    assert status["sequences_not_refined"] == {"frame_unreadable": 1}
    with ctx.catalog.session() as session:
        lost = session.get(Frame, reported[5].frame_id)
        assert lost is not None and lost.state == FrameState.QUARANTINED
    without = update_poses(ctx, [(DEVICE, SEQUENCE)])
    again = update_poses(ctx, [(DEVICE, SEQUENCE)])
    assert without.refined == 1
    assert (again.refined, again.not_refined, again.tiles_marked) == (0, {}, 0)


def test_refinement_can_be_turned_off(
    ctx: TileContext, reported: list[Keyframe], sharp_drive: Path
) -> None:
    """`ROADSWARM_TILES_REFINE_POSES=false`: the smoothed track places the imagery."""
    _seed(ctx, reported[:6], sharp_drive)
    plain = replace(ctx, settings=TileSettings(refine_poses=False))
    update = update_poses(plain, [(DEVICE, SEQUENCE)])
    assert (update.posed, update.refined) == (6, 0)
    assert {row.source for row in _stored(ctx.catalog).values()} == {"smoothed"}


def _refined_in_own_catalog(
    folder: Path, world: World, frames: list[Keyframe], drive: Path
) -> tuple[PoseRefinement, dict[str, tuple[float, float, float, str]]]:
    """The frames as one sequence in a fresh SQLite catalog, matched and posed: how the
    refinement went and the stored poses."""
    folder.mkdir()
    with catalog_at("sqlite", folder) as catalog:
        store_world_roads(catalog, world)
        own = TileContext(catalog, LocalObjectStore(folder / "store"))
        _seed(own, frames, drive)
        update_poses(own, [(DEVICE, SEQUENCE)])
        return _refinement(catalog), _poses(catalog)


def test_the_devices_odometry_is_used_and_a_broken_one_is_ignored_with_the_reason(
    reported: list[Keyframe],
    truth: list[Keyframe],
    sharp_drive: Path,
    grid_world: World,
    tmp_path: Path,
) -> None:
    """Frames that carry `travelled_m` are refined with it: the record says "used", and the
    digest and the poses differ from those of the same frames without it. Odometry that goes
    back along the sequence is ignored with the reason: the frames are all posed, exactly as
    if they carried none."""
    frames = reported[:16]
    local = LocalFrame(truth[0].lon, truth[0].lat)
    x, y = local.to_local(np.array([f.lon for f in truth]), np.array([f.lat for f in truth]))
    driven = 250.0 + np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    with_odometry = [
        replace(f, travelled_m=round(float(d), 2)) for f, d in zip(frames, driven, strict=False)
    ]
    backwards = list(with_odometry)
    backwards[9] = replace(backwards[9], travelled_m=float(driven[7]) - 1.0)
    plain, plain_poses = _refined_in_own_catalog(
        tmp_path / "plain", grid_world, frames, sharp_drive
    )
    used, used_poses = _refined_in_own_catalog(
        tmp_path / "used", grid_world, with_odometry, sharp_drive
    )
    broken, broken_poses = _refined_in_own_catalog(
        tmp_path / "broken", grid_world, backwards, sharp_drive
    )
    assert (plain.odometry, used.odometry, broken.odometry) == (None, "used", "odometry_backwards")
    assert used.inputs_sha256 != plain.inputs_sha256 != broken.inputs_sha256
    assert used_poses.keys() == plain_poses.keys() and len(used_poses) == len(frames)
    moved = []
    for frame_id, (lon, lat, _, _) in plain_poses.items():
        x, y = LocalFrame(lon, lat).to_local(
            np.array([used_poses[frame_id][0]]), np.array([used_poses[frame_id][1]])
        )
        moved.append(float(np.hypot(x[0], y[0])))
    assert max(moved) > 0.001  # without the odometry they would be bit for bit the same
    assert broken.outcome == "registered" and "at index 8 to" in broken.detail
    assert broken_poses == plain_poses


def _median_offset(poses: dict[str, tuple[float, float]], truth: list[Keyframe]) -> np.ndarray:
    """The median (east, north) offset of `poses` from the truth, over the frames they hold."""
    ex, ey, _ = _offsets(poses, truth)
    return np.array([np.median(ex), np.median(ey)])


@pytest.fixture(scope="module")
def later_truth(grid_world: World, sharp_drive: Path) -> list[Keyframe]:
    """Another device's keyframes of the same drive the next day: 2 m further on, other bytes."""
    return [reencoded(f) for f in keyframes(grid_world, sharp_drive, start=12)]


@pytest.fixture(scope="module")
def later(later_truth: list[Keyframe]) -> list[Keyframe]:
    """Those keyframes as its receiver reports them: biased the other way from the first's."""
    return with_gnss_error(later_truth, bias_m=(-1.0, 1.5), jitter_m=0.4, heading_deg=1.5, seed=8)


def _seed_later(ctx: TileContext, frames: list[Keyframe], drive: Path) -> SequenceKey:
    """The later drive in the catalog and the store (device-b, the next day), matched."""
    return _seed(
        ctx, frames, drive, device=LATER_DEVICE, start=datetime(2026, 11, 3, 9, tzinfo=UTC)
    )


@dataclass(frozen=True)
class TwoDrives:
    """The first drive and the later one, each as reported and as it truly was."""

    first: list[Keyframe]
    first_truth: list[Keyframe]
    later: list[Keyframe]
    later_truth: list[Keyframe]

    def gap_m(self, poses: dict[str, tuple[float, float, float, str]]) -> float:
        """How far apart the two drives' imagery lies in `poses`: the distance between their
        median offsets from the truth."""
        offsets = [
            _median_offset({f.frame_id: poses[f.frame_id][:2] for f in frames}, truth)
            for frames, truth in ((self.first, self.first_truth), (self.later, self.later_truth))
        ]
        return float(np.hypot(*(offsets[0] - offsets[1])))


@pytest.fixture
def drives(
    reported: list[Keyframe],
    truth: list[Keyframe],
    later: list[Keyframe],
    later_truth: list[Keyframe],
) -> TwoDrives:
    """Both drives."""
    return TwoDrives(reported, truth, later, later_truth)


def test_a_later_drive_is_aligned_to_the_drive_already_in_the_map(
    ctx: TileContext,
    drives: TwoDrives,
    sharp_drive: Path,
    grid_world: World,
    tmp_path: Path,
) -> None:
    """Refined on its own, the later drive lands where its GNSS bias puts it; posed in the
    catalog that holds the first drive, it is registered with that drive's frames and lands on
    them, and the record says so. Posing either again refines nothing and moves nothing: the
    first drive does not align to the later one."""
    alone, alone_poses = _refined_in_own_catalog(
        tmp_path / "alone", grid_world, drives.later, sharp_drive
    )
    _seed(ctx, drives.first, sharp_drive)
    update_poses(ctx, [(DEVICE, SEQUENCE)])
    first = _poses(ctx.catalog)
    key = _seed_later(ctx, drives.later, sharp_drive)
    assert update_poses(ctx, [key]).refined == 1
    assert (
        alone.map_pairs_used == 0
        and _refinement(ctx.catalog, key).map_pairs_used > len(drives.later) / 2
    )
    poses = _poses(ctx.catalog)
    assert {k: poses[k] for k in first} == first
    assert drives.gap_m({**first, **alone_poses}) > 0.5
    assert drives.gap_m(poses) < 0.15
    assert tiles_status(ctx.catalog)["sequences_aligned_to_map"] == 1
    again = update_poses(ctx, [key, (DEVICE, SEQUENCE)])
    assert (again.refined, again.tiles_marked) == (0, 0)
    assert _poses(ctx.catalog) == poses


def test_drives_posed_together_align_in_the_order_they_arrived(
    ctx: TileContext,
    drives: TwoDrives,
    sharp_drive: Path,
) -> None:
    """The next day's drive arrives first and the one driven the day before is uploaded after
    it (a device offline for a while); both are posed in one run, named the other way round.
    The first to arrive is refined alone and the other is aligned to it, to its poses of this
    run (not stored yet)."""
    key = _seed_later(ctx, drives.later, sharp_drive)
    _seed(ctx, drives.first, sharp_drive)
    update = update_poses(ctx, [(DEVICE, SEQUENCE), key])
    assert update.refined == 2
    assert _refinement(ctx.catalog, key).map_pairs_used == 0
    assert _refinement(ctx.catalog, (DEVICE, SEQUENCE)).map_pairs_used > len(drives.first) / 2
    assert drives.gap_m(_poses(ctx.catalog)) < 0.15


def test_map_frames_that_cannot_be_read_are_passed_over(
    ctx: TileContext,
    drives: TwoDrives,
    sharp_drive: Path,
) -> None:
    """Every other frame of the first drive is damaged in the store after it was refined: the
    later drive is still refined and aligned, each frame with the nearest readable one."""
    _seed(ctx, drives.first, sharp_drive)
    update_poses(ctx, [(DEVICE, SEQUENCE)])
    for frame in drives.first[::2]:
        ctx.store.put_bytes(frame_object_key(DEVICE, frame.frame_id), b"not the frame")
    key = _seed_later(ctx, drives.later, sharp_drive)
    update = update_poses(ctx, [key])
    assert (update.refined, update.not_refined) == (1, {})
    assert _refinement(ctx.catalog, key).map_pairs_used > len(drives.later) / 2
    assert drives.gap_m(_poses(ctx.catalog)) < 0.15


def test_a_new_batch_of_the_map_realigns_the_drives_after_it(
    either_ctx: TileContext,
    drives: TwoDrives,
    sharp_drive: Path,
) -> None:
    """The first drive's second batch arrives after the later drive was aligned to its first:
    the build refines the first drive again and then the later one, which lines up with the
    first drive's new poses; a build after that poses nothing."""
    ctx = either_ctx
    half = len(drives.first) // 2
    _seed(ctx, drives.first[:half], sharp_drive)
    build_imagery(ctx)
    key = _seed_later(ctx, drives.later, sharp_drive)
    build_imagery(ctx)
    aligned_at = _refinement(ctx.catalog, key).refined_at
    _seed(ctx, drives.first[half:], sharp_drive, first_index=half)
    run = build_imagery(ctx)
    assert (run.sequences_refined, run.sequences_realigned) == (1, 1)
    assert _refinement(ctx.catalog, key).refined_at > aligned_at
    assert _refinement(ctx.catalog, key).map_pairs_used > len(drives.later) / 2
    assert drives.gap_m(_poses(ctx.catalog)) < 0.15
    again = update_poses(ctx, [key, (DEVICE, SEQUENCE)])
    assert (again.refined, again.tiles_marked, again.realign) == (0, 0, [])


def test_a_drive_whose_map_went_away_is_refined_again_on_its_own(
    ctx: TileContext, drives: TwoDrives, sharp_drive: Path
) -> None:
    """The first drive's frames are damaged in the store and its next batch arrives: it can no
    longer be refined and keeps its smoothed poses, so the map the later drive was aligned to
    is gone; the build poses the later drive again, on its own."""
    half = len(drives.first) // 2
    _seed(ctx, drives.first[:half], sharp_drive)
    build_imagery(ctx)
    key = _seed_later(ctx, drives.later, sharp_drive)
    build_imagery(ctx)
    assert _refinement(ctx.catalog, key).map_pairs_used > 0
    for frame in drives.first[:half]:
        ctx.store.put_bytes(frame_object_key(DEVICE, frame.frame_id), b"not the frame")
    _seed(ctx, drives.first[half:], sharp_drive, first_index=half)
    run = build_imagery(ctx)
    assert run.sequences_not_refined == {"frame_unreadable": 1}
    assert run.sequences_realigned == 1
    assert _refinement(ctx.catalog, key).map_pairs_used == 0


def test_a_sequence_whose_map_changed_while_it_was_refined_is_posed_again(
    ctx: TileContext, drives: TwoDrives, sharp_drive: Path
) -> None:
    """Two workers pose the two drives at once: the later one reads the map before the first
    one's poses are stored. Its refiner then names it to be posed again; one that read the map
    after does not."""
    _seed(ctx, drives.first, sharp_drive)
    key = _seed_later(ctx, drives.later, sharp_drive)
    early = CatalogRefiner(ctx.catalog, ctx.store)
    _pose_with(ctx, key, early)
    update_poses(ctx, [(DEVICE, SEQUENCE)])
    assert early.stale_maps() == [key]
    late = CatalogRefiner(ctx.catalog, ctx.store)
    _pose_with(ctx, key, late)
    assert late.stale_maps() == []


def test_a_drive_whose_map_moved_stays_marked_until_it_is_posed_again(
    either_ctx: TileContext, drives: TwoDrives, sharp_drive: Path
) -> None:
    """The worker that stores the first drive's new batch dies before it queues the later
    drive's realignment (its `realign` is dropped here). The later drive was marked in the same
    commit: the sweep finds it pending, and posing it aligns it anew and clears the mark."""
    ctx = either_ctx
    half = len(drives.first) // 2
    _seed(ctx, drives.first[:half], sharp_drive)
    update_poses(ctx, [(DEVICE, SEQUENCE)])
    key = _seed_later(ctx, drives.later, sharp_drive)
    update_poses(ctx, [key])
    assert pending_sequences(ctx.catalog) == []
    _seed(ctx, drives.first[half:], sharp_drive, first_index=half)
    assert update_poses(ctx, [(DEVICE, SEQUENCE)]).realign == [key]
    assert pending_sequences(ctx.catalog) == [key]
    again = update_poses(ctx, pending_sequences(ctx.catalog))
    assert (again.refined, again.realign) == (1, [])
    assert pending_sequences(ctx.catalog) == []
    assert drives.gap_m(_poses(ctx.catalog)) < 0.15


def test_a_marked_drive_with_no_frames_left_is_not_pending_forever(
    ctx: TileContext, reported: list[Keyframe], sharp_drive: Path
) -> None:
    """A drive whose map was marked moved, then all of whose frames were quarantined: posing it
    finds nothing to align and clears the mark, so the sweep does not pose it again forever."""
    key = _seed(ctx, reported[:6], sharp_drive)
    update_poses(ctx, [key])
    with ctx.catalog.session() as session:
        session.execute(
            update(PoseRefinement).values(map_moved_since=datetime.now(UTC), map_moved_version=1)
        )
        session.execute(update(Frame).values(state=FrameState.QUARANTINED))
    assert pending_sequences(ctx.catalog) == [key]
    assert update_poses(ctx, [key]).posed == 0
    assert pending_sequences(ctx.catalog) == []


def test_a_posing_that_read_a_drive_before_its_map_moved_leaves_the_mark(
    ctx: TileContext, drives: TwoDrives, sharp_drive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The later drive is being posed when another worker stores the first drive's new batch
    and marks it: the posing stores what it refined on the old map, and the mark stays for the
    next posing, which clears it."""
    half = len(drives.first) // 2
    _seed(ctx, drives.first[:half], sharp_drive)
    update_poses(ctx, [(DEVICE, SEQUENCE)])
    key = _seed_later(ctx, drives.later, sharp_drive)
    read = poses_for

    def first_drive_moves_meanwhile(*args: Any, **kwargs: Any) -> Any:
        found = read(*args, **kwargs)
        monkeypatch.setattr(posing, "poses_for", read)
        _seed(ctx, drives.first[half:], sharp_drive, first_index=half)
        update_poses(ctx, [(DEVICE, SEQUENCE)])
        return found

    update_poses(ctx, [key])  # aligned to the first batch; the second then marks it
    monkeypatch.setattr(posing, "poses_for", first_drive_moves_meanwhile)
    stale = update_poses(ctx, [key])
    assert stale.realign == [key]
    assert pending_sequences(ctx.catalog) == [key]
    update_poses(ctx, [key])
    assert pending_sequences(ctx.catalog) == []


def _pose_with(ctx: TileContext, key: SequenceKey, refiner: CatalogRefiner) -> None:
    """Pose a sequence with this refiner, storing nothing (a worker before its commit)."""
    poses_for(
        ctx.catalog,
        [key],
        max_offroad_m=TileSettings().max_offroad_m,
        options=MatchSettings().sequence_options(),
        refine=refiner,
    )
