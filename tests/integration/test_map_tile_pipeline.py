"""The imagery tile pipeline on a simulated drive: frames in the catalog and the store, matched by
the real matcher, posed, stitched into z21 blocks and the pyramid below, in-process and by a real
Celery worker on Redis over PostgreSQL."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import select

from ingest.catalog import utcnow
from ingest.db import Catalog
from ingest.queues import MATCH_QUEUE, MATCH_TASK, TILES_QUEUE, create_celery_app
from ingest.storage import LocalObjectStore
from mapbuilder.errors import CorruptTile
from mapbuilder.tile_tasks import SHARED_FRAMES_ROOT
from mapbuilder.tiles.catalog import FramePoseRow, PoseRefinement, PoseSkip, TileRow
from mapbuilder.tiles.context import TileContext
from mapbuilder.tiles.dirty import mark_corrupt, mark_dirty
from mapbuilder.tiles.imagery import decode_rgba
from mapbuilder.tiles.mercator import Tile
from mapbuilder.tiles.pipeline import build_dirty
from mapbuilder.tiles.posing import mark_everything, pending_sequences, update_poses
from mapbuilder.tiles.shared_frames import FOLDER_PREFIX
from mapbuilder.tiles.store import TileStore, tile_key
from roadswarm.sim.world import World
from roadswarm.stack import ingest_worker
from tests.ingest_helpers import catalog_at, postgres_database, require_redis
from tests.integration.edge_drive import roadswarm
from tests.tile_helpers import (
    Keyframe,
    calibration_of,
    keyframes,
    match,
    reencoded,
    seed_drive,
    store_world_roads,
)

REDIS_URL = "redis://127.0.0.1:6379/5"  # this suite's database on the shared Redis
SETTLE_TIMEOUT_S = 300


@contextmanager
def catalog_at_url(url: str) -> Iterator[Catalog]:
    """The migrated catalog at `url`, disposed afterwards."""
    catalog = Catalog.connect(url)
    try:
        yield catalog
    finally:
        catalog.dispose()


@pytest.fixture(scope="module")
def drive_frames(grid_world: World, short_drive: Path) -> list[Keyframe]:
    """The short drive's keyframes every 4 m."""
    return keyframes(grid_world, short_drive)


@pytest.fixture
def seeded(sqlite_catalog: Catalog, tmp_path: Path, grid_world: World) -> tuple[TileContext, World]:
    """A tile context over a SQLite catalog holding the world's roads, and a local store."""
    store_world_roads(sqlite_catalog, grid_world)
    return TileContext(sqlite_catalog, LocalObjectStore(tmp_path / "store")), grid_world


def _add(
    ctx: TileContext, frames: list[Keyframe], short_drive: Path, device: str
) -> tuple[str, str]:
    """Seed, match and pose one sequence."""
    key = seed_drive(
        ctx.catalog,
        ctx.store,
        frames,
        device_id=device,
        sequence_id="seq",
        camera=calibration_of(short_drive),
    )
    match(ctx.catalog, [key])
    update_poses(ctx, [key])
    return key


def _rows(catalog: Catalog) -> dict[Tile, TileRow]:
    with catalog.session() as session:
        # Imagery only: matching also queues the coverage and freshness layers (same table).
        imagery = select(TileRow).where(TileRow.layer == "imagery")
        return {(r.z, r.x, r.y): r for r in session.scalars(imagery)}


def _stored(ctx: TileContext) -> dict[str, bytes]:
    return {o.key: ctx.store.get_bytes(o.key) for o in ctx.store.list("tiles/imagery/")}


def test_tiles_decode_form_a_pyramid_and_rebuild_identically(
    seeded: tuple[TileContext, World], drive_frames: list[Keyframe], short_drive: Path
) -> None:
    """Every z21 tile decodes, has its parents down to z14, and a full rebuild changes no byte."""
    ctx, _ = seeded
    _add(ctx, drive_frames, short_drive, "device-a")
    summary = build_dirty(ctx)
    rows = _rows(ctx.catalog)
    top = [t for t in rows if t[0] == 21 and rows[t].etag]
    assert len(top) > 20 and summary.written[14] >= 1
    assert all(row.dirty_since is None for row in rows.values())
    for z, x, y in top:
        pixels = decode_rgba(ctx.store.get_bytes(tile_key("imagery", (z, x, y), "webp")))
        assert pixels.shape == (256, 256, 4) and pixels[..., 3].any()
        for level in range(20, 13, -1):
            shift = 21 - level
            assert rows[(level, x >> shift, y >> shift)].etag is not None
    before = _stored(ctx)
    # Every built tile, and any other a footprint's box reaches (that saw no ground).
    assert mark_everything(ctx) >= len(top)
    build_dirty(ctx)
    assert _stored(ctx) == before


def test_new_frames_rebuild_only_the_tiles_they_touch(
    seeded: tuple[TileContext, World], drive_frames: list[Keyframe], short_drive: Path
) -> None:
    """A second drive over the end of the route rebuilds its own tiles and parents, nothing else."""
    ctx, _ = seeded
    half = len(drive_frames) // 2
    first_key = _add(ctx, drive_frames[:half], short_drive, "device-a")
    build_dirty(ctx)
    again = update_poses(ctx, [first_key])  # the same poses again: nothing to rebuild
    assert (again.posed, again.tiles_marked) == (half, 0)
    first = {t: (r.etag, r.built_at) for t, r in _rows(ctx.catalog).items()}
    _add(ctx, drive_frames[half:], short_drive, "device-b")
    with ctx.catalog.session() as session:
        dirty_top = {
            (r.z, r.x, r.y)
            for r in session.scalars(select(TileRow).where(TileRow.z == 21))
            if r.dirty_since is not None
        }
    build_dirty(ctx)
    after = _rows(ctx.catalog)
    rebuilt_top = {t for t in after if t[0] == 21 and after[t].built_at != first.get(t, (0, 0))[1]}
    assert dirty_top and rebuilt_top == dirty_top
    untouched = [t for t in first if t[0] == 21 and t not in dirty_top]
    assert untouched and all(after[t].built_at == first[t][1] for t in untouched)
    assert len([t for t in after if t[0] == 21]) > len([t for t in first if t[0] == 21])


def test_frames_without_calibration_or_off_the_network_are_recorded(
    seeded: tuple[TileContext, World], drive_frames: list[Keyframe], short_drive: Path
) -> None:
    """No calibration and a fix far from every road are skipped with a countable reason."""
    ctx, _ = seeded
    plain = seed_drive(
        ctx.catalog, ctx.store, drive_frames[:5], device_id="d-plain", sequence_id="s", camera=None
    )
    far = [
        Keyframe(f.jpeg + b"far", f.lon + 0.02, f.lat, f.heading_deg, f.t_s)
        for f in drive_frames[5:10]
    ]
    off = seed_drive(
        ctx.catalog,
        ctx.store,
        far,
        device_id="d-far",
        sequence_id="s",
        camera=calibration_of(short_drive),
    )
    match(ctx.catalog, [plain, off])
    assert set(pending_sequences(ctx.catalog)) == {plain, off}
    update = update_poses(ctx, [plain, off])
    assert update.posed == 0 and update.skipped == {"no_calibration": 5, "off_network": 5}
    with ctx.catalog.session() as session:
        reasons = {s.reason for s in session.scalars(select(PoseSkip))}
        assert reasons == {"no_calibration", "off_network"}
    assert pending_sequences(ctx.catalog) == []
    assert build_dirty(ctx).blocks == {}


def test_a_corrupt_tile_is_never_served_and_is_rebuilt(
    seeded: tuple[TileContext, World],
    drive_frames: list[Keyframe],
    short_drive: Path,
    tmp_path: Path,
) -> None:
    """Bit rot in a stored z21 tile raises CorruptTile; marked, the next build restores its bytes."""
    ctx, _ = seeded
    _add(ctx, drive_frames[:10], short_drive, "device-a")
    build_dirty(ctx)
    tile = next(t for t, r in _rows(ctx.catalog).items() if t[0] == 21 and r.etag)
    good = ctx.tiles.get("imagery", tile)
    assert good is not None
    path = tmp_path / "store" / tile_key("imagery", tile, "webp")
    info = path.stat()
    with path.open("r+b") as handle:
        handle.seek(40)
        handle.write(b"\x00\x01\x02\x03")
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # bit rot: size and time unchanged
    with pytest.raises(CorruptTile):
        ctx.tiles.get("imagery", tile)
    mark_corrupt(ctx.catalog, "imagery", tile)
    summary = build_dirty(ctx)
    assert summary.written[21] == 1 and 20 not in summary.blocks  # same bytes: parents stay
    assert ctx.tiles.get("imagery", tile) == good


@pytest.mark.parametrize("damage", ["rewritten", "lost"])
def test_a_child_that_is_not_what_the_catalog_recorded_is_rebuilt_before_its_parent(
    seeded: tuple[TileContext, World],
    drive_frames: list[Keyframe],
    short_drive: Path,
    damage: str,
) -> None:
    """A z21 tile rewritten behind the catalog's back (the store's own record agreeing with the
    bad bytes, as after a crash before they reached the disk) or lost: building its parent
    notices, rebuilds it from its frames, then the parent."""
    ctx, _ = seeded
    _add(ctx, drive_frames[:10], short_drive, "device-a")
    build_dirty(ctx)
    tile = next(t for t, r in _rows(ctx.catalog).items() if t[0] == 21 and r.etag)
    good = ctx.tiles.get("imagery", tile)
    key = tile_key("imagery", tile, "webp")
    if damage == "rewritten":
        ctx.store.put_bytes(key, b"not a tile")
    else:
        ctx.store.delete(key)
    with ctx.catalog.session() as session:
        mark_dirty(session, "imagery", [(20, tile[1] // 2, tile[2] // 2)], utcnow())
    summary = build_dirty(ctx)
    assert summary.written[21] == 1 and summary.written[20] == 1
    assert ctx.tiles.get("imagery", tile) == good
    assert all(row.dirty_since is None for row in _rows(ctx.catalog).values())


@pytest.fixture
def tile_worker(tmp_path: Path) -> Iterator[tuple[Catalog, Celery, Path, Path]]:
    """A PostgreSQL catalog, a local store, a real worker of two processes on the match and
    tiles queues, and the folder its processes share decoded frames in (gone when it stops)."""
    require_redis()
    store_dir = tmp_path / "store"
    with postgres_database() as url, catalog_at_url(url) as catalog:
        app = create_celery_app(REDIS_URL)
        with app.connection_for_write() as connection:
            for queue in (MATCH_QUEUE, TILES_QUEUE):
                channel = connection.default_channel
                channel.queue_declare(queue=queue, durable=True, auto_delete=False)
                channel.queue_purge(queue)
        worker = ingest_worker(
            broker_url=REDIS_URL,
            database_url=url,
            store_dir=store_dir,
            workdir=tmp_path / "worker",
            queues=[MATCH_QUEUE, TILES_QUEUE],
            name="tiles-test",
        )
        try:
            with worker:
                shared = SHARED_FRAMES_ROOT / f"{FOLDER_PREFIX}{worker.pid}"
                yield catalog, app, store_dir, shared
            assert not shared.exists(), "the worker left its shared frames behind"
        finally:
            app.close()


def _wait_settled(catalog: Catalog, expected_min_zoom: int = 14) -> dict[Tile, TileRow]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        rows = _rows(catalog)
        done = rows and all(r.dirty_since is None for r in rows.values())
        if done and any(t[0] == expected_min_zoom for t in rows) and not pending_sequences(catalog):
            return rows
        time.sleep(0.5)
    pytest.fail(f"tiles not built within {SETTLE_TIMEOUT_S} s: {len(_rows(catalog))} rows")


def test_a_worker_builds_the_pyramid_as_in_process(
    tile_worker: tuple[Catalog, Celery, Path, Path],
    drive_frames: list[Keyframe],
    short_drive: Path,
    grid_world: World,
    tmp_path: Path,
) -> None:
    """Matching queues posing (refined) and blocks; the worker's tiles equal an in-process
    build's bytes."""
    catalog, app, store_dir, shared_frames = tile_worker
    store = LocalObjectStore(store_dir)
    store_world_roads(catalog, grid_world)
    key = seed_drive(
        catalog,
        store,
        drive_frames,
        device_id="device-a",
        sequence_id="seq",
        camera=calibration_of(short_drive),
    )
    app.send_task(MATCH_TASK, args=[[list(key)]], queue=MATCH_QUEUE)
    rows = _wait_settled(catalog)
    assert {t[0] for t in rows} == set(range(14, 22))
    with catalog.session() as session:
        # The worker placed the imagery with refined poses, and said so.
        assert set(session.scalars(select(FramePoseRow.source))) == {"registered"}
        assert list(session.scalars(select(PoseRefinement.outcome))) == ["registered"]
    # Its two processes shared the frames they decoded.
    assert any(shared_frames.iterdir())
    worker_tiles = _stored(TileContext(catalog, store))
    (tmp_path / "local").mkdir()
    with catalog_at("sqlite", tmp_path / "local") as local:
        store_world_roads(local, grid_world)
        ctx = TileContext(local, LocalObjectStore(tmp_path / "local-store"))
        _add(ctx, drive_frames, short_drive, "device-a")
        build_dirty(ctx)
        local_tiles = _stored(ctx)
    differ = sorted(
        key
        for key in local_tiles.keys() | worker_tiles.keys()
        if local_tiles.get(key) != worker_tiles.get(key)
    )
    assert not differ, f"{len(differ)} of {len(worker_tiles)} tiles differ: {differ[:8]}"
    built = next(tile for tile, row in rows.items() if row.etag)
    assert TileStore(store).get("imagery", built) is not None


def test_a_worker_realigns_a_drive_when_the_map_beneath_it_changes(
    tile_worker: tuple[Catalog, Celery, Path, Path],
    drive_frames: list[Keyframe],
    short_drive: Path,
    grid_world: World,
) -> None:
    """A second device's drive is aligned to the first; then the first one's last batch
    arrives. The worker refines the first drive again and queues the posing of the second,
    which is refined against the first one's new poses."""
    catalog, app, store_dir, _ = tile_worker
    store = LocalObjectStore(store_dir)
    store_world_roads(catalog, grid_world)
    camera = calibration_of(short_drive)
    cut = len(drive_frames) - 6
    first = seed_drive(
        catalog, store, drive_frames[:cut], device_id="device-a", sequence_id="seq", camera=camera
    )
    app.send_task(MATCH_TASK, args=[[list(first)]], queue=MATCH_QUEUE)
    _wait_settled(catalog)
    second = seed_drive(
        catalog,
        store,
        [reencoded(f) for f in drive_frames],
        device_id="device-b",
        sequence_id="seq",
        camera=camera,
        start=datetime(2026, 11, 3, 9, 0, tzinfo=UTC),
    )
    app.send_task(MATCH_TASK, args=[[list(second)]], queue=MATCH_QUEUE)
    _wait_for(lambda: _refinement(catalog, second) is not None, "the second drive was not posed")
    _wait_settled(catalog)
    aligned_at = _refined_at(catalog, second)
    seed_drive(
        catalog,
        store,
        drive_frames[cut:],
        device_id="device-a",
        sequence_id="seq",
        camera=camera,
        first_index=cut,
    )
    app.send_task(MATCH_TASK, args=[[list(first)]], queue=MATCH_QUEUE)
    _wait_for(
        lambda: _refined_at(catalog, second) != aligned_at, "the second drive was not posed again"
    )
    _wait_settled(catalog)
    refined = [_refinement(catalog, key) for key in (first, second)]
    assert [r.outcome if r else None for r in refined] == ["registered", "registered"]
    assert refined[0] is not None and refined[0].frames == len(drive_frames)


def _wait_for(condition: Callable[[], bool], failure: str) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{failure} within {SETTLE_TIMEOUT_S} s")
        time.sleep(0.5)


def _refinement(catalog: Catalog, key: tuple[str, str]) -> PoseRefinement | None:
    with catalog.session() as session:
        row = session.get(PoseRefinement, key)
        if row is not None:
            session.expunge(row)
        return row


def _refined_at(catalog: Catalog, key: tuple[str, str]) -> datetime | None:
    row = _refinement(catalog, key)
    return None if row is None else row.refined_at


def test_the_cli_builds_reports_and_refuses_bad_input(
    seeded: tuple[TileContext, World],
    drive_frames: list[Keyframe],
    short_drive: Path,
    tmp_path: Path,
) -> None:
    """`map tiles build` poses and builds, `status --json` counts; bad layer or zoom exit 2."""
    ctx, _ = seeded
    key = seed_drive(
        ctx.catalog,
        ctx.store,
        drive_frames[:8],
        device_id="device-a",
        sequence_id="seq",
        camera=calibration_of(short_drive),
    )
    match(ctx.catalog, [key])
    env = {
        **os.environ,
        "ROADSWARM_DATABASE_URL": str(ctx.catalog.engine.url),
        "ROADSWARM_STORE_DIR": str(tmp_path / "store"),
    }
    built = roadswarm("map", "tiles", "build", "--json", env=env)
    assert built.returncode == 0, built.stderr
    run = json.loads(built.stdout)
    assert run["frames_posed"] == 8 and run["summary"]["written"]["14"] == 1
    status = roadswarm("map", "tiles", "status", "--json", env=env)
    layers = json.loads(status.stdout)["layers"]
    assert layers["imagery"]["dirty"] == 0
    assert layers["imagery"]["built"] == sum(run["summary"]["written"].values())
    for args, message in [
        (("--layer", "satellite"), "use one of coverage, freshness, imagery"),
        (("--layer", "coverage"), "roadswarm map layers build"),
        (("--min-zoom", "25"), "use 14 to 21"),
    ]:
        refused = roadswarm("map", "tiles", "build", *args, env=env)
        assert refused.returncode == 2 and message in refused.stderr
