"""Dirty-tile tracking in the catalog, block leases, and lower zooms made from their children."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from ingest.catalog import utcnow
from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from mapbuilder.errors import TileOutOfRangeError, UnknownLayer
from mapbuilder.settings import TileSettings
from mapbuilder.tiles import pipeline
from mapbuilder.tiles.catalog import TileRow
from mapbuilder.tiles.context import TileContext
from mapbuilder.tiles.dirty import (
    BuiltTile,
    any_dirty_under,
    block_of,
    dirty_blocks,
    dirty_tiles,
    mark_corrupt,
    mark_dirty,
    record_built,
)
from mapbuilder.tiles.leases import LeaseKeeper, acquire, release
from mapbuilder.tiles.pipeline import build_block, stale_blocks
from mapbuilder.tiles.pyramid import children_of, downsample

TILE = (21, 1_188_003, 592_010)


def _row(catalog: Catalog, tile: tuple[int, int, int]) -> TileRow:
    with catalog.session() as session:
        return session.scalars(
            select(TileRow).where(TileRow.z == tile[0], TileRow.x == tile[1], TileRow.y == tile[2])
        ).one()


def test_a_mark_during_a_build_keeps_the_tile_dirty(catalog: Catalog) -> None:
    """A build clears the mark it started from, not one that arrived while it ran."""
    block = block_of(TILE, 8)
    with catalog.session() as session:
        mark_dirty(session, "imagery", [TILE], utcnow())
        started = dirty_tiles(session, "imagery", block, 8)
    assert started == {TILE: 1}
    with catalog.session() as session:
        mark_dirty(session, "imagery", [TILE], utcnow())  # a newer frame, mid-build
        record_built(session, "imagery", [BuiltTile(TILE, "a" * 64, 3, started[TILE])], utcnow())
    row = _row(catalog, TILE)
    assert row.dirty_since is not None and row.etag == "a" * 64 and row.dirty_version == 2
    with catalog.session() as session:
        again = dirty_tiles(session, "imagery", block, 8)
        record_built(session, "imagery", [BuiltTile(TILE, "a" * 64, 3, again[TILE])], utcnow())
        assert dirty_blocks(session, "imagery", 21, 8) == []
    assert _row(catalog, TILE).dirty_since is None


def test_parents_are_marked_only_when_the_bytes_change(catalog: Catalog) -> None:
    """A new ETag dirties the parent; rebuilding to the same bytes does not."""
    parent = (20, TILE[1] // 2, TILE[2] // 2)
    with catalog.session() as session:
        mark_dirty(session, "imagery", [TILE], utcnow())
        changed = record_built(session, "imagery", [BuiltTile(TILE, "a" * 64, 1, 1)], utcnow())
        assert changed == [TILE]
        assert any_dirty_under(session, "imagery", block_of(parent, 8), 8) is False
        assert dirty_tiles(session, "imagery", block_of(parent, 8), 8) == {parent: 1}
        mark_dirty(session, "imagery", [TILE], utcnow())
        assert record_built(session, "imagery", [BuiltTile(TILE, "a" * 64, 1, 2)], utcnow()) == []
    assert _row(catalog, parent).dirty_version == 1


def test_marks_are_checked(sqlite_catalog: Catalog) -> None:
    """Unknown layers and zooms a layer does not store are refused; mark_corrupt marks."""
    with sqlite_catalog.session() as session:
        with pytest.raises(UnknownLayer):
            mark_dirty(session, "satellite", [TILE], utcnow())
        with pytest.raises(TileOutOfRangeError, match="use 14 to 21"):
            mark_dirty(session, "imagery", [(12, 0, 0)], utcnow())
    mark_corrupt(sqlite_catalog, "imagery", TILE)
    assert _row(sqlite_catalog, TILE).dirty_since is not None


def test_downsample_averages_children_with_their_alpha() -> None:
    """2x2 averages with premultiplied alpha; absent children are transparent, all absent: None."""
    red = np.zeros((256, 256, 4), np.uint8)
    red[..., 0], red[..., 3] = 200, 255
    half = red.copy()
    half[:, 1::2, 3] = 0  # every other column has no imagery
    half[:, 1::2, :3] = 0
    parent = downsample([red, half, None, None])
    assert parent is not None
    assert (parent[:128, :128] == [200, 0, 0, 255]).all()
    assert (parent[:128, 128:, 0] == 200).all() and (parent[:128, 128:, 3] == 128).all()
    assert (parent[128:] == 0).all()
    assert downsample([None] * 4) is None
    assert children_of((14, 3, 5)) == [(15, 6, 10), (15, 7, 10), (15, 6, 11), (15, 7, 11)]


def test_one_builder_holds_a_block_until_it_lets_go_or_lapses(catalog: Catalog) -> None:
    """A held lease is refused to others, survives a stranger's release, and lapses at expiry."""
    block, now = (21, 5, 7), utcnow()
    assert acquire(catalog, "imagery", block, "a", now, 60.0)
    assert not acquire(catalog, "imagery", block, "b", now, 60.0)
    release(catalog, "imagery", block, "b")
    assert not acquire(catalog, "imagery", block, "b", now, 60.0)
    assert acquire(catalog, "imagery", block, "b", now + timedelta(seconds=61), 60.0)
    release(catalog, "imagery", block, "a")  # a's lease lapsed: this releases nothing
    assert not acquire(catalog, "imagery", block, "c", now + timedelta(seconds=62), 60.0)
    release(catalog, "imagery", block, "b")
    assert acquire(catalog, "imagery", block, "c", now, 60.0)


def test_a_lease_is_kept_while_its_block_is_built_and_lapses_one_term_after(
    catalog: Catalog,
) -> None:
    """A builder working for many terms keeps its block; once it stops (as a dead one does),
    the lease is free to the next builder one term later, not at the end of a long limit."""
    block, term_s = (21, 5, 7), 1.5
    assert acquire(catalog, "imagery", block, "a", utcnow(), term_s)
    with LeaseKeeper(catalog, "imagery", block, "a", term_s) as lease:
        time.sleep(2.5 * term_s)
        assert not acquire(catalog, "imagery", block, "b", utcnow(), term_s)
        assert not lease.lost
    stopped = utcnow()
    assert not acquire(catalog, "imagery", block, "b", stopped, term_s)
    assert acquire(catalog, "imagery", block, "b", stopped + timedelta(seconds=term_s), term_s)


def test_a_build_that_lost_its_lease_writes_and_records_nothing(
    sqlite_catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A builder stalled past its term, whose block another builder then took, leaves the
    block's tiles to that builder: it writes none, and they stay dirty."""
    settings = TileSettings(block_lease_s=3.0)
    ctx = TileContext(sqlite_catalog, LocalObjectStore(tmp_path / "store"), settings=settings)
    block = block_of(TILE, 8)
    with sqlite_catalog.session() as session:
        mark_dirty(session, "imagery", [TILE], utcnow())
    stitch = pipeline._stitched

    def stalled(*args: object) -> object:
        # The term ran out meanwhile and another builder took the block; the keeper's next
        # renewal (every second) finds it.
        later = utcnow() + timedelta(seconds=settings.block_lease_s)
        assert acquire(sqlite_catalog, "imagery", block, "other", later, 60.0)
        time.sleep(2.0)
        return stitch(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "_stitched", stalled)
    report = build_block(ctx, "imagery", block)
    assert (report.busy, report.removed, report.written) == (True, 0, 0)
    with sqlite_catalog.session() as session:
        assert list(dirty_tiles(session, "imagery", block, 8)) == [TILE]
    # The other builder still holds it: the stalled one's release let nothing go.
    assert not acquire(sqlite_catalog, "imagery", block, "third", utcnow(), 60.0)


def test_a_leased_block_is_left_and_a_stale_one_is_found(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    """A block another builder holds is reported busy; the sweep finds blocks dirty for long."""
    ctx = TileContext(sqlite_catalog, LocalObjectStore(tmp_path / "store"))
    block = block_of(TILE, 8)
    long_ago = utcnow() - timedelta(hours=1)
    with sqlite_catalog.session() as session:
        mark_dirty(session, "imagery", [TILE], long_ago)
    assert stale_blocks(ctx, "imagery", utcnow() - timedelta(minutes=10)) == [block]
    assert stale_blocks(ctx, "imagery", long_ago) == []
    assert acquire(sqlite_catalog, "imagery", block, "other", utcnow(), 60.0)
    assert build_block(ctx, "imagery", block).busy
    release(sqlite_catalog, "imagery", block, "other")
    report = build_block(ctx, "imagery", block)  # no frame sees the tile: nothing to show
    assert (report.busy, report.removed, report.remarked) == (False, 1, False)
    assert stale_blocks(ctx, "imagery", utcnow()) == []
