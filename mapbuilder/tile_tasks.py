"""Celery tasks of the tile pipeline (queue `tiles`): thin wrappers around `mapbuilder.tiles`.

`tiles.poses` poses the frames of matched sequences and queues one `tiles.build_block` per block
of top-zoom tiles they made dirty; each block task builds its block and queues the parent block
once no child of it is dirty any more (a sibling still building will queue it instead), so the
pyramid is rebuilt from the top down without any task waiting on another. A block is built under
a lease (one builder at a time); marks that arrive during a build queue the block again.
`tiles.sweep` (every few minutes, from the beat) queues again what a lost task left behind.
"""

from __future__ import annotations

import atexit
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import current_app, current_task, shared_task

from ingest.catalog import utcnow
from ingest.queues import (
    LAYERS_UPDATE_TASK,
    MATCH_QUEUE,
    MATCH_TASK,
    TILES_BUILD_TASK,
    TILES_POSES_TASK,
    TILES_QUEUE,
    TILES_SWEEP_TASK,
    pool_size,
)
from ingest.settings import QueueSettings
from ingest.tasks import RETRY, worker_context
from mapbuilder.layers.marking import LAYER_NAMES
from mapbuilder.match_stage import unmatched_sequences
from mapbuilder.settings import TileSettings
from mapbuilder.tiles.context import IMAGERY, TileContext
from mapbuilder.tiles.dirty import Block, stale_tiles
from mapbuilder.tiles.layers import EAGER_MIN_ZOOM
from mapbuilder.tiles.leases import task_holder
from mapbuilder.tiles.pipeline import build_block, next_block, stale_blocks
from mapbuilder.tiles.posing import MAX_REALIGN_ROUNDS, pending_sequences, update_poses
from mapbuilder.tiles.shared_frames import remove_folder, worker_folder

_contexts: dict[int, TileContext] = {}
MATCH_KEYS_PER_TASK = 50

log = logging.getLogger(__name__)


def worker_tiles() -> TileContext:
    """This process's tile context, over the worker's catalog and object store."""
    pid = os.getpid()
    if pid not in _contexts:
        ingest = worker_context()
        _contexts[pid] = TileContext(ingest.catalog, ingest.store)
    return _contexts[pid]


SHARED_FRAMES_ENV = f"{TileSettings.model_config['env_prefix']}SHARED_FRAMES_DIR"
SHARED_FRAMES_ROOT = Path("/dev/shm")


def share_decoded_frames(options: dict[str, Any] | None = None, **_: object) -> None:
    """Give a worker's pool processes a folder to share decoded frames in (Celery's
    `celeryd_init`: they are forked after it and inherit the setting); removed when the worker
    exits. Not for a single process, nor where the settings turn it off or name a folder."""
    settings = TileSettings()
    if pool_size(options) < 2 or settings.shared_frames_mb == 0 or settings.shared_frames_dir:
        return
    if not SHARED_FRAMES_ROOT.is_dir():
        return  # no RAM-backed folder here (not Linux): each process decodes its own
    owner = os.getpid()
    folder = worker_folder(SHARED_FRAMES_ROOT, owner)
    os.environ[SHARED_FRAMES_ENV] = str(folder)
    atexit.register(_remove_if_owner, folder, owner)


def _remove_if_owner(folder: Path, owner: int) -> None:
    # Only the worker that made it: a forked child that ran its exit handlers must not.
    if os.getpid() == owner:
        remove_folder(folder)


def send_block(layer_name: str, block: Block) -> None:
    """Queue the build of one block."""
    z, bx, by = block
    current_app.send_task(TILES_BUILD_TASK, args=[layer_name, z, bx, by], queue=TILES_QUEUE)


def poses_job(keys: list[list[str]], realign_round: int = 0) -> dict[str, Any]:
    """Pose the matched frames of these (device_id, sequence_id) sequences; queue dirty blocks,
    and the posing of sequences whose map these poses changed (round `realign_round` + 1)."""
    update = update_poses(worker_tiles(), [(device, sequence) for device, sequence in keys])
    for block in update.blocks:
        send_block(IMAGERY, block)
    if update.realign and realign_round < MAX_REALIGN_ROUNDS:
        realign = [list(key) for key in update.realign]
        args = [realign, realign_round + 1]
        current_app.send_task(TILES_POSES_TASK, args=args, queue=TILES_QUEUE)
    elif update.realign:
        log.warning(
            "not realigning %d more sequences after %d rounds", len(update.realign), realign_round
        )
    return {
        "posed": update.posed,
        "skipped": update.skipped,
        "tiles_marked": update.tiles_marked,
        "blocks": len(update.blocks),
        "realign": len(update.realign),
    }


def build_block_job(layer_name: str, z: int, bx: int, by: int) -> dict[str, Any]:
    """Build the dirty tiles of one block; queue what must follow (corrupt children, the parent)."""
    ctx = worker_tiles()
    # Under the task's own id: delivered again after its worker died, it takes its lease back.
    task_id = current_task.request.id if current_task else None
    holder = task_holder(task_id) if task_id else None
    report = build_block(ctx, layer_name, (z, bx, by), holder=holder)
    for block in report.rebuild:
        send_block(layer_name, block)
    if report.remarked:
        send_block(layer_name, (z, bx, by))
    parent = next_block(ctx, layer_name, (z, bx, by))
    if parent is not None:
        send_block(layer_name, parent)
    return {
        "written": report.written,
        "removed": report.removed,
        "left_dirty": report.left_dirty,
        "changed": report.changed,
        "frames": report.frames,
        "busy": report.busy,
        "remarked": report.remarked,
        "parent": list(parent) if parent else None,
    }


def sweep_job() -> dict[str, Any]:
    """Queue again what lost or failed tasks left (anything younger than two sweeps is most
    likely queued already): sequences accepted but never matched, matched but not posed, imagery
    blocks still dirty, and coverage and freshness tiles still dirty (from the eager zooms up)."""
    ctx = worker_tiles()
    cutoff = utcnow() - timedelta(seconds=2 * QueueSettings().tiles_sweep_every_s)
    unmatched = unmatched_sequences(ctx.catalog, accepted_before=cutoff)
    for start in range(0, len(unmatched), MATCH_KEYS_PER_TASK):
        group = [list(key) for key in unmatched[start : start + MATCH_KEYS_PER_TASK]]
        current_app.send_task(MATCH_TASK, args=[group], queue=MATCH_QUEUE)
    keys = pending_sequences(ctx.catalog)
    if keys:
        poses_job([list(key) for key in keys])
    blocks = stale_blocks(ctx, IMAGERY, cutoff)
    for block in blocks:
        send_block(IMAGERY, block)
    with ctx.catalog.session() as session:
        layers = stale_tiles(session, LAYER_NAMES, min_zoom=EAGER_MIN_ZOOM, dirty_before=cutoff)
    if layers:
        current_app.send_task(LAYERS_UPDATE_TASK, args=[[]], queue=TILES_QUEUE)
    return {
        "unmatched": len(unmatched),
        "sequences": len(keys),
        "blocks": len(blocks),
        "layer_tiles": layers,
    }


poses_task = shared_task(name=TILES_POSES_TASK, **RETRY)(poses_job)
build_block_task = shared_task(name=TILES_BUILD_TASK, **RETRY)(build_block_job)
sweep_task = shared_task(name=TILES_SWEEP_TASK, acks_late=True)(sweep_job)
