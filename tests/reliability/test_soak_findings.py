"""What the soak test found, made deterministic: devices sharing a camera calibration commit at
the same moment on PostgreSQL; a parent tile is built while a child's rebuild is half done."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from ingest.catalog import Camera, utcnow
from ingest.commit import commit_batch
from ingest.db import Catalog
from ingest.devices import DeviceInfo, register_device
from ingest.protocol import (
    BatchManifest,
    CameraCalibration,
    Registration,
    SignedManifest,
    frame_object_key,
    sign,
)
from ingest.storage import LocalObjectStore
from mapbuilder.tiles.catalog import TileRow
from mapbuilder.tiles.context import IMAGERY, TileContext
from mapbuilder.tiles.dirty import block_of, mark_dirty, parent_of
from mapbuilder.tiles.mercator import Tile
from mapbuilder.tiles.pipeline import build_block, build_dirty
from mapbuilder.tiles.store import tile_key
from roadswarm.sim.world import World
from tests.ingest_helpers import FakeDevice, frame_id, make_jpeg, postgres_database
from tests.tile_helpers import keyframes, pose_drive

CALIBRATION = {
    "width_px": 640,
    "height_px": 480,
    "mount_height_m": 1.4,
    "pitch_deg": 6.0,
    "roll_deg": 0.0,
    "camera_matrix": [[400.0, 0.0, 320.0], [0.0, 400.0, 240.0], [0.0, 0.0, 1.0]],
    "dist_coeffs": [0.0] * 5,
}


def test_concurrent_commits_of_one_camera_both_succeed(tmp_path: Path) -> None:
    """The camera row is inserted by another transaction still open while this commit runs;
    once that one commits, this commit goes through (it used to fail on the duplicate key)."""
    camera = CameraCalibration.model_validate(CALIBRATION)
    store = LocalObjectStore(tmp_path / "store")
    device = FakeDevice()
    data = make_jpeg(7)
    store.put_bytes(frame_object_key(device.device_id, frame_id(data)), data)
    with postgres_database() as url:
        catalog = Catalog.connect(url)
        try:
            info, _ = register_device(
                catalog, Registration.model_validate(device.registration()), now=utcnow()
            )
            entries = [
                e.model_copy(update={"camera_id": camera.camera_id()})
                for e in device.entries([data])
            ]
            batch = BatchManifest(
                device_id=device.device_id,
                counter=1,
                created_at=utcnow(),
                frames=entries,
                cameras={camera.camera_id(): camera},
            )
            signed = sign(batch, device.key)
            outcome = _commit_while_camera_inserted(catalog, store, info, signed, camera)
            with catalog.session() as session:
                cameras = session.scalar(select(func.count()).select_from(Camera))
        finally:
            catalog.dispose()
    assert outcome == ["committed"], outcome
    assert cameras == 1


def _commit_while_camera_inserted(
    catalog: Catalog,
    store: LocalObjectStore,
    device: DeviceInfo,
    signed: SignedManifest,
    camera: CameraCalibration,
) -> list[str]:
    """Insert the camera in a transaction left open, commit the batch in a thread (it must wait
    for that transaction), then end the transaction; what the commit came to."""
    outcome: list[str] = []

    def commit() -> None:
        try:
            commit_batch(catalog, store, device, signed, utcnow())
            outcome.append("committed")
        except Exception as exc:  # the outcome the test compares
            outcome.append(repr(exc))

    row = {
        "camera_id": camera.camera_id(),
        "calibration": camera.model_dump(mode="json"),
        "first_seen": utcnow(),
    }
    with catalog.engine.connect() as other:
        transaction = other.begin()
        other.execute(insert(Camera).values(**row))
        thread = threading.Thread(target=commit)
        thread.start()
        thread.join(timeout=3)
        waited = thread.is_alive()
        transaction.commit()
    thread.join(timeout=30)
    assert waited, f"the commit did not wait for the open transaction: {outcome}"
    return outcome


def test_a_parent_built_while_a_child_is_rewritten_is_left_for_later(
    grid_world: World,
    short_drive: Path,
    sqlite_catalog: Catalog,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A z20 build that reads a z21 child whose rebuild has written new bytes but not yet
    recorded them leaves the parent dirty, logs no error and marks nothing for repair (the
    child's own build queues the parent); the same bytes under a clean child are damage."""
    ctx = TileContext(sqlite_catalog, LocalObjectStore(tmp_path / "store"))
    pose_drive(ctx, grid_world, keyframes(grid_world, short_drive)[:12], short_drive)
    build_dirty(ctx)
    child, other = _two_built_tiles(sqlite_catalog)
    parent_block = block_of(parent_of(child), ctx.settings.block_tiles)
    with sqlite_catalog.session() as session:  # a rebuild of the child in flight
        mark_dirty(session, IMAGERY, [child, parent_of(child)], utcnow())
    ctx.tiles.put(IMAGERY, child, ctx.store.get_bytes(tile_key(IMAGERY, other, "webp")))
    in_flight = build_block(ctx, IMAGERY, parent_block)
    assert in_flight.rebuild == () and in_flight.left_dirty >= 1, in_flight
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    build_dirty(ctx)  # the child's build, then its parent
    with sqlite_catalog.session() as session:  # now damage at rest: the child is clean
        mark_dirty(session, IMAGERY, [parent_of(child)], utcnow())
    ctx.tiles.put(IMAGERY, child, ctx.store.get_bytes(tile_key(IMAGERY, other, "webp")))
    damaged = build_block(ctx, IMAGERY, parent_block)
    assert damaged.rebuild == (block_of(child, ctx.settings.block_tiles),), damaged
    assert any("is corrupt" in r.getMessage() for r in caplog.records)


def _two_built_tiles(catalog: Catalog) -> tuple[Tile, Tile]:
    """Two z21 imagery tiles with stored bytes."""
    with catalog.session() as session:
        rows = session.execute(
            select(TileRow.x, TileRow.y)
            .where(TileRow.layer == IMAGERY, TileRow.z == 21, TileRow.etag.is_not(None))
            .order_by(TileRow.x, TileRow.y)
            .limit(2)
        ).all()
    (x1, y1), (x2, y2) = rows
    return (21, x1, y1), (21, x2, y2)
