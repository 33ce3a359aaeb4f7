"""Building imagery tiles: one block of dirty tiles at a time, then the zoom below.

`build_block` builds the dirty tiles of one block (stitched from frames at the top zoom, from
their four stored children below), writes them to the tile store, then records them in one
transaction; parents of tiles whose bytes changed are marked dirty. `next_block` names the parent
block once none of its children is dirty any more. `build_dirty` runs both in-process until
nothing is dirty (the CLI and the demo); the Celery tasks of `mapbuilder.tile_tasks` run one block
per task. Poses and the first dirty marks come from `posing.update_poses`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import select

from ingest.catalog import utcnow
from ingest.db import Catalog
from ingest.states import record_run
from mapbuilder.errors import CorruptTile, MapError
from mapbuilder.tiles.bev import U8Image
from mapbuilder.tiles.catalog import TileRow
from mapbuilder.tiles.context import IMAGERY, TileContext
from mapbuilder.tiles.dirty import (
    Block,
    BuiltTile,
    any_dirty_under,
    block_of,
    dirty_blocks,
    dirty_tiles,
    mark_dirty,
    record_built,
)
from mapbuilder.tiles.frames import FrameUnreadableError
from mapbuilder.tiles.imagery import decode_rgba, encode_webp, frames_near, stitch_tiles
from mapbuilder.tiles.layers import LayerSpec, layer
from mapbuilder.tiles.leases import LeaseKeeper, acquire, new_holder, release
from mapbuilder.tiles.mercator import Tile
from mapbuilder.tiles.pyramid import children_of, downsample
from mapbuilder.tiles.store import check_layer_zoom
from mapbuilder.tiles.unreadable import quarantine_unreadable

log = logging.getLogger(__name__)
STAGE = "tiles"


@dataclass(frozen=True)
class BlockReport:
    """One block built: tiles written, tiles removed (nothing left to show), tiles left dirty
    (a child was corrupt), tiles whose bytes changed, and distinct frames stitched (top zoom)."""

    block: Block
    written: int = 0
    removed: int = 0
    left_dirty: int = 0
    changed: int = 0
    frames: int = 0
    seconds: float = 0.0
    rebuild: tuple[Block, ...] = ()
    """Blocks one zoom up holding a child found corrupt: rebuild them, then this one again."""
    busy: bool = False
    """Another builder holds the block: it will queue the block again if it needs to."""
    remarked: bool = False
    """Tiles of the block were marked while it was built: build it again."""


def build_block(
    ctx: TileContext, layer_name: str, block: Block, *, holder: str | None = None
) -> BlockReport:
    """Build the dirty tiles of one block under its lease (held as `holder`, default a new name),
    write them, record them (see the module doc); after dropping the lease, say whether marks
    arrived meanwhile."""
    spec = imagery_layer(layer_name)
    holder = holder or new_holder()
    if not acquire(ctx.catalog, spec.name, block, holder, utcnow(), ctx.settings.block_lease_s):
        return BlockReport(block, busy=True)
    try:
        with LeaseKeeper(
            ctx.catalog, spec.name, block, holder, ctx.settings.block_lease_s
        ) as lease:
            report, started = _build_leased(ctx, spec, block, lease)
    finally:
        release(ctx.catalog, spec.name, block, holder)
    with ctx.catalog.session() as session:
        now_dirty = dirty_tiles(session, spec.name, block, ctx.settings.block_tiles)
    remarked = any(started.get(tile) != version for tile, version in now_dirty.items())
    return replace(report, remarked=remarked)


def _build_leased(
    ctx: TileContext, spec: LayerSpec, block: Block, lease: LeaseKeeper
) -> tuple[BlockReport, dict[Tile, int]]:
    """The build itself, and the dirty counts it started from; nothing is recorded, and
    nothing more written, once the lease is lost (the report then says busy)."""
    started = time.perf_counter()
    n = ctx.settings.block_tiles
    with ctx.catalog.session() as session:
        dirty = dirty_tiles(session, spec.name, block, n)
    if not dirty:
        return BlockReport(block), dirty
    frames, corrupt = 0, list[Tile]()
    if block[0] == spec.max_zoom:
        images, frames = _stitched(ctx, dirty)
    else:
        images, corrupt = _from_children(ctx, spec, dirty)
    built = _write(ctx, spec, dirty, images, lease)
    if built is None:
        return BlockReport(block, busy=True), dirty
    now = utcnow()
    seconds = time.perf_counter() - started
    with ctx.catalog.session() as session:
        changed = record_built(session, spec.name, built, now)
        if frames:
            record_run(session, STAGE, frames, seconds, now)
    removed = sum(b.etag is None for b in built)
    report = BlockReport(
        block,
        written=len(built) - removed,
        removed=removed,
        left_dirty=len(dirty) - len(built),
        changed=len(changed),
        frames=frames,
        seconds=seconds,
        rebuild=tuple(sorted({block_of(child, n) for child in corrupt})),
    )
    return report, dirty


def imagery_layer(layer_name: str) -> LayerSpec:
    """The layer spec, when this pipeline builds that layer (imagery); else a clear error."""
    spec = layer(layer_name)
    if spec.name != IMAGERY:
        msg = f"layer {spec.name!r} is not built from frames: only {IMAGERY!r} is built here"
        raise MapError(msg)
    return spec


_Image = tuple[U8Image | None, int]  # pixels (None: nothing to show) and frames blended


def _stitched(ctx: TileContext, dirty: dict[Tile, int]) -> tuple[dict[Tile, _Image], int]:
    """Top-zoom tiles from the frames near the block, and how many distinct frames they used."""
    frames = frames_near(ctx.catalog, list(dirty), ctx.bev)
    images: dict[Tile, _Image] = dict.fromkeys(dirty, (None, 0))
    used: set[str] = set()
    unreadable: dict[str, FrameUnreadableError] = {}
    tiles = stitch_tiles(ctx.store, frames, set(dirty), decoded=ctx.decoded, unreadable=unreadable)
    for stitched in tiles:
        images[stitched.tile] = (stitched.rgba, len(stitched.frame_ids))
        used.update(stitched.frame_ids)
    if unreadable:
        quarantine_unreadable(ctx, unreadable)
    return images, len(used)


def _from_children(
    ctx: TileContext, spec: LayerSpec, dirty: dict[Tile, int]
) -> tuple[dict[Tile, _Image], list[Tile]]:
    """Lower-zoom tiles from their stored children, and the children found corrupt: those are
    marked for rebuild and their parents left dirty, to be built once the children are."""
    images: dict[Tile, _Image] = {}
    corrupt: list[Tile] = []
    built = _built_children(ctx.catalog, spec.name, [c for t in dirty for c in children_of(t)])
    for tile in sorted(dirty):
        read = _read_children(ctx, spec.name, tile, built)
        if read is None:  # a child is being rebuilt: its build marks and queues this one again
            continue
        children, bad = read
        if bad:
            corrupt.extend(bad)
            continue
        frames = sum(built[child][1] for child in children_of(tile) if child in built)
        images[tile] = (downsample(children), frames)
    if corrupt:
        with ctx.catalog.session() as session:
            mark_dirty(session, spec.name, corrupt, utcnow())
    return images, corrupt


def _read_children(
    ctx: TileContext, layer_name: str, tile: Tile, built: dict[Tile, tuple[str | None, int]]
) -> tuple[list[U8Image | None], list[Tile]] | None:
    """The pixels of a tile's four children (None: absent), and those that are corrupt: bytes
    that are not the ones the catalog recorded, or a tile the catalog has but the store lost.
    None when a child was rebuilt since its ETag was read (not damage: build the tile later)."""
    pixels: list[U8Image | None] = []
    bad = []
    for child in children_of(tile):
        etag = built.get(child, (None, 0))[0]
        try:
            stored = ctx.tiles.get(layer_name, child, expected_etag=etag)
        except CorruptTile as exc:
            if _rebuilt_meanwhile(ctx.catalog, layer_name, child, etag):
                return None
            log.error("%s: rebuilding it before its parent", exc)
            bad.append(child)
            continue
        if stored is None and etag is not None:
            if _rebuilt_meanwhile(ctx.catalog, layer_name, child, etag):
                return None
            log.error(
                "%s tile %d/%d/%d is missing from the store: rebuilding it", layer_name, *child
            )
            bad.append(child)
            continue
        pixels.append(None if stored is None else decode_rgba(stored.data))
    return pixels, bad


def _rebuilt_meanwhile(catalog: Catalog, layer_name: str, tile: Tile, etag: str | None) -> bool:
    """Whether the tile is being rebuilt (marked dirty) or was recorded with another ETag since
    `etag` was read: a build writes its bytes before recording them, so a reader in between
    sees bytes the catalog does not name yet (found by the soak test, with two workers)."""
    z, x, y = tile
    with catalog.session() as session:
        row = session.execute(
            select(TileRow.etag, TileRow.dirty_since).where(
                TileRow.layer == layer_name, TileRow.z == z, TileRow.x == x, TileRow.y == y
            )
        ).one_or_none()
    return row is not None and (row.dirty_since is not None or row.etag != etag)


def _built_children(
    catalog: Catalog, layer_name: str, tiles: list[Tile]
) -> dict[Tile, tuple[str | None, int]]:
    """The recorded ETag and frame count of tiles (of one zoom)."""
    if not tiles:
        return {}
    z = tiles[0][0]
    xs, ys = [t[1] for t in tiles], [t[2] for t in tiles]
    with catalog.session() as session:
        rows = session.execute(
            select(TileRow.x, TileRow.y, TileRow.etag, TileRow.frame_count).where(
                TileRow.layer == layer_name,
                TileRow.z == z,
                TileRow.x.between(min(xs), max(xs)),
                TileRow.y.between(min(ys), max(ys)),
            )
        ).all()
    return {(z, x, y): (etag, int(count)) for x, y, etag, count in rows}


def _write(
    ctx: TileContext,
    spec: LayerSpec,
    dirty: dict[Tile, int],
    images: dict[Tile, _Image],
    lease: LeaseKeeper,
) -> list[BuiltTile] | None:
    """Write (or remove) each built tile in the store; what to record in the catalog. None once
    the lease is lost: the tiles stay dirty for the block's next builder, whose writes are the
    newer."""
    built = []
    for tile in sorted(images):
        if lease.lost:
            return None
        pixels, frames = images[tile]
        if pixels is None:
            ctx.tiles.delete(spec.name, tile)
            built.append(BuiltTile(tile, None, 0, dirty[tile]))
        else:
            settings = ctx.settings
            data = encode_webp(
                pixels,
                quality=settings.webp_quality,
                method=settings.webp_method,
                lossless=settings.webp_lossless,
            )
            etag = ctx.tiles.put(spec.name, tile, data)
            built.append(BuiltTile(tile, etag, frames, dirty[tile]))
    return built


def next_block(ctx: TileContext, layer_name: str, block: Block) -> Block | None:
    """The parent block to build after `block`, once no child of it is dirty; None otherwise."""
    spec = layer(layer_name)
    z, bx, by = block
    if z <= spec.min_zoom:
        return None
    parent = (z - 1, bx // 2, by // 2)
    n = ctx.settings.block_tiles
    with ctx.catalog.session() as session:
        if not dirty_tiles(session, spec.name, parent, n):
            return None
        if any_dirty_under(session, spec.name, parent, n):
            return None
    return parent


def stale_blocks(ctx: TileContext, layer_name: str, dirty_before: datetime) -> list[Block]:
    """Blocks dirty since before `dirty_before` that can be built now (at the top zoom, or with
    no dirty child): what a lost or failed task left behind, for the sweep to queue again."""
    spec = imagery_layer(layer_name)
    n = ctx.settings.block_tiles
    found = []
    with ctx.catalog.session() as session:
        for z in range(spec.max_zoom, spec.min_zoom - 1, -1):
            for block in dirty_blocks(session, spec.name, z, n, dirty_before=dirty_before):
                if z == spec.max_zoom or not any_dirty_under(session, spec.name, block, n):
                    found.append(block)
    return found


@dataclass
class BuildSummary:
    """What `build_dirty` did, per zoom: blocks built and tiles written or removed."""

    blocks: dict[int, int] = field(default_factory=dict)
    written: dict[int, int] = field(default_factory=dict)
    removed: dict[int, int] = field(default_factory=dict)
    frames: int = 0  # summed over blocks: a frame near two blocks counts twice
    seconds: float = 0.0

    def add(self, report: BlockReport) -> None:
        """Count one block's report."""
        z = report.block[0]
        self.blocks[z] = self.blocks.get(z, 0) + 1
        self.written[z] = self.written.get(z, 0) + report.written
        self.removed[z] = self.removed.get(z, 0) + report.removed
        self.frames += report.frames
        self.seconds += report.seconds


MAX_PASSES = 3


def build_dirty(
    ctx: TileContext,
    layer_name: str = IMAGERY,
    *,
    min_zoom: int | None = None,
    on_block: Callable[[BlockReport], None] | None = None,
) -> BuildSummary:
    """Build every dirty tile of the layer in this process, top zoom first, then each lower zoom
    (down to `min_zoom`, default the layer's) from the one above. A corrupt child found on the
    way is rebuilt in a further pass."""
    spec = imagery_layer(layer_name)
    lowest = spec.min_zoom if min_zoom is None else check_layer_zoom(spec, min_zoom)
    summary = BuildSummary()
    for _ in range(MAX_PASSES):
        found = False
        for z in range(spec.max_zoom, lowest - 1, -1):
            with ctx.catalog.session() as session:
                blocks = dirty_blocks(session, spec.name, z, ctx.settings.block_tiles)
            for block in blocks:
                found = True
                report = build_block(ctx, spec.name, block)
                summary.add(report)
                if on_block is not None:
                    on_block(report)
        if not found:
            break
    return summary
