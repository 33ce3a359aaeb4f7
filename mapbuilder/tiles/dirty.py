"""Dirty-tile tracking: marking tiles for rebuild, finding them by block, recording builds.

Marks are counted, not flagged: a build remembers the count it started from and clears the mark
only if the count has not moved since, in the same statement that records the build.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ingest.catalog import utcnow
from ingest.db import Catalog
from mapbuilder.tiles.catalog import TileRow
from mapbuilder.tiles.layers import layer
from mapbuilder.tiles.mercator import Tile
from mapbuilder.tiles.store import check_layer_zoom, check_tile

Block = tuple[int, int, int]  # (z, bx, by): the tiles x in [bx * n, bx * n + n), same for y


@dataclass(frozen=True)
class BuiltTile:
    """The outcome of building one tile: its ETag (None: nothing to show, the tile is removed),
    the frames it was made from, and the dirty count the build started from."""

    tile: Tile
    etag: str | None
    frame_count: int
    version: int


def block_of(tile: Tile, block_tiles: int) -> Block:
    """The block holding `tile`."""
    z, x, y = tile
    return z, x // block_tiles, y // block_tiles


def parent_of(tile: Tile) -> Tile:
    """The tile one zoom lower that covers `tile`."""
    z, x, y = tile
    return z - 1, x // 2, y // 2


def mark_dirty(session: Session, layer_name: str, tiles: Iterable[Tile], now: datetime) -> int:
    """Mark tiles of a layer for rebuild (rows created as needed); return how many were marked."""
    spec = layer(layer_name)
    wanted = sorted({check_tile(tile) for tile in tiles})
    for z, _, _ in wanted:
        check_layer_zoom(spec, z)
    rows = [
        {"layer": spec.name, "z": z, "x": x, "y": y, "dirty_since": now, "dirty_version": 1}
        for z, x, y in wanted
    ]
    if not rows:
        return 0
    table = TileRow.__table__
    statement = dialect_insert(session)(table).values(built_version=0, frame_count=0)
    statement = statement.on_conflict_do_update(
        index_elements=["layer", "z", "x", "y"],
        set_={
            "dirty_version": table.c.dirty_version + 1,
            "dirty_since": func.coalesce(table.c.dirty_since, statement.excluded.dirty_since),
        },
    )
    # Sorted rows: two writers marking overlapping sets lock rows in the same order.
    session.execute(statement, rows)
    return len(rows)


def dialect_insert(session: Session) -> Any:
    """The dialect's INSERT with ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def dirty_tiles(
    session: Session, layer_name: str, block: Block, block_tiles: int
) -> dict[Tile, int]:
    """The dirty tiles of a block, with the dirty count a build of them starts from."""
    z, bx, by = block
    rows = session.execute(
        select(TileRow.x, TileRow.y, TileRow.dirty_version).where(
            TileRow.layer == layer_name,
            TileRow.z == z,
            TileRow.dirty_since.is_not(None),
            TileRow.x >= bx * block_tiles,
            TileRow.x < (bx + 1) * block_tiles,
            TileRow.y >= by * block_tiles,
            TileRow.y < (by + 1) * block_tiles,
        )
    ).all()
    return {(z, x, y): int(version) for x, y, version in rows}


def dirty_blocks(
    session: Session,
    layer_name: str,
    z: int,
    block_tiles: int,
    *,
    dirty_before: datetime | None = None,
) -> list[Block]:
    """Blocks of zoom `z` holding at least one dirty tile (marked before `dirty_before`, when
    given), in (bx, by) order."""
    query = select(TileRow.x, TileRow.y).where(
        TileRow.layer == layer_name, TileRow.z == z, TileRow.dirty_since.is_not(None)
    )
    if dirty_before is not None:
        query = query.where(TileRow.dirty_since < dirty_before)
    rows = session.execute(query).all()
    return sorted({(z, x // block_tiles, y // block_tiles) for x, y in rows})


def stale_tiles(
    session: Session, layer_names: Sequence[str], *, min_zoom: int, dirty_before: datetime
) -> int:
    """How many tiles of these layers, at `min_zoom` or above, are dirty since before
    `dirty_before` (a build lost with its task)."""
    count = session.scalar(
        select(func.count())
        .select_from(TileRow)
        .where(
            TileRow.layer.in_(list(layer_names)),
            TileRow.z >= min_zoom,
            TileRow.dirty_since < dirty_before,
        )
    )
    return int(count or 0)


def any_dirty_under(
    session: Session, layer_name: str, parent_block: Block, block_tiles: int
) -> bool:
    """Whether a child tile of a block's tiles (one zoom up) is still dirty."""
    z, bx, by = parent_block
    span = 2 * block_tiles
    found = session.execute(
        select(TileRow.x)
        .where(
            TileRow.layer == layer_name,
            TileRow.z == z + 1,
            TileRow.dirty_since.is_not(None),
            TileRow.x >= bx * span,
            TileRow.x < (bx + 1) * span,
            TileRow.y >= by * span,
            TileRow.y < (by + 1) * span,
        )
        .limit(1)
    ).first()
    return found is not None


def record_built(
    session: Session, layer_name: str, built: Sequence[BuiltTile], now: datetime
) -> list[Tile]:
    """Record builds, clearing each dirty mark no newer mark has overtaken; return the tiles
    whose ETag changed (their parents need rebuilding)."""
    spec = layer(layer_name)
    changed = []
    for result in built:
        z, x, y = result.tile
        key = and_(TileRow.layer == spec.name, TileRow.z == z, TileRow.x == x, TileRow.y == y)
        before = session.execute(select(TileRow.etag).where(key)).scalar_one_or_none()
        session.execute(
            update(TileRow)
            .where(key)
            .values(
                etag=result.etag,
                built_at=now,
                frame_count=result.frame_count,
                built_version=result.version,
                dirty_since=case(
                    (TileRow.dirty_version == result.version, None), else_=TileRow.dirty_since
                ),
            )
            .execution_options(synchronize_session=False)
        )
        if before != result.etag:
            changed.append(result.tile)
    parents = [parent_of(t) for t in changed if t[0] > spec.min_zoom]
    mark_dirty(session, spec.name, parents, now)
    return changed


def mark_corrupt(catalog: Catalog, layer_name: str, tile: Tile) -> None:
    """A stored tile failed its check (`CorruptTile`): mark it dirty so the next build rewrites it."""
    with catalog.session() as session:
        mark_dirty(session, layer_name, [tile], utcnow())


@dataclass(frozen=True)
class LayerCounts:
    """How many tiles of a layer are built and dirty, per zoom."""

    built: dict[int, int]
    dirty: dict[int, int]


def layer_counts(session: Session, layer_name: str) -> LayerCounts:
    """Built (with an ETag) and dirty tiles of a layer, per zoom."""
    rows = session.execute(
        select(
            TileRow.z,
            func.count(TileRow.etag),
            func.count(TileRow.dirty_since),
        )
        .where(TileRow.layer == layer_name)
        .group_by(TileRow.z)
    ).all()
    return LayerCounts(
        built={int(z): int(built) for z, built, _ in rows if built},
        dirty={int(z): int(dirty) for z, _, dirty in rows if dirty},
    )
