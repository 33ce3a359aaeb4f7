"""What operators run on the imagery layer: build what is dirty (in-process), and its status."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from ingest.db import Catalog
from ingest.states import SequenceKey
from mapbuilder.tiles.catalog import FramePoseRow, PoseRefinement, PoseSkip
from mapbuilder.tiles.context import IMAGERY, TileContext
from mapbuilder.tiles.dirty import layer_counts
from mapbuilder.tiles.layers import LAYERS
from mapbuilder.tiles.pipeline import BlockReport, BuildSummary, build_dirty, imagery_layer
from mapbuilder.tiles.posing import (
    MAX_REALIGN_ROUNDS,
    mark_everything,
    pending_sequences,
    update_poses,
)
from mapbuilder.tiles.refine_inputs import ODOMETRY_USED
from mapbuilder.tiles.refiner import REGISTERED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildRun:
    """What `build_imagery` did: sequences posed first (refined, or kept smoothed by reason),
    tiles marked by `--all`, the build; and the sequences posed again after them to line up
    with the map they changed (`sequences_realigned`)."""

    sequences_posed: int
    frames_posed: int
    skipped: dict[str, int]
    marked_all: int
    summary: BuildSummary
    sequences_refined: int = 0
    sequences_not_refined: dict[str, int] = field(default_factory=dict)
    sequences_realigned: int = 0


def build_imagery(
    ctx: TileContext,
    *,
    layer_name: str = IMAGERY,
    everything: bool = False,
    min_zoom: int | None = None,
    on_block: Callable[[BlockReport], None] | None = None,
) -> BuildRun:
    """Pose matched frames not posed yet, mark everything when asked, then build what is dirty."""
    imagery_layer(layer_name)
    keys = pending_sequences(ctx.catalog)
    update = update_poses(ctx, keys)
    realigned = _realign(ctx, update.realign)
    marked = mark_everything(ctx) if everything else 0
    summary = build_dirty(ctx, layer_name, min_zoom=min_zoom, on_block=on_block)
    return BuildRun(
        len(keys),
        update.posed,
        update.skipped,
        marked,
        summary,
        update.refined,
        update.not_refined,
        realigned,
    )


def _realign(ctx: TileContext, keys: list[SequenceKey]) -> int:
    """Pose these sequences again, then those their new poses concern, until none is left (each
    round moves on to sequences that reached the catalog later, so it ends); how many."""
    done = 0
    for _ in range(MAX_REALIGN_ROUNDS):
        if not keys:
            return done
        done += len(keys)
        keys = update_poses(ctx, keys).realign
    log.warning("still %d sequences to realign after %d rounds", len(keys), MAX_REALIGN_ROUNDS)
    return done


def tiles_status(catalog: Catalog) -> dict[str, Any]:
    """Built and dirty tiles per layer and zoom, posed frames, skipped frames by reason, and
    sequences not refined or refined without their odometry, by reason, and those aligned to
    other sequences in the map."""
    layers = {}
    with catalog.session() as session:
        for name in LAYERS:
            counts = layer_counts(session, name)
            layers[name] = {
                "built": sum(counts.built.values()),
                "dirty": sum(counts.dirty.values()),
                "built_by_zoom": counts.built,
                "dirty_by_zoom": counts.dirty,
            }
        posed = session.execute(select(func.count()).select_from(FramePoseRow)).scalar_one()
        skipped = dict(
            session.execute(select(PoseSkip.reason, func.count()).group_by(PoseSkip.reason)).all()
        )
        refinements = session.execute(
            select(PoseRefinement.outcome, PoseRefinement.reason, func.count()).group_by(
                PoseRefinement.outcome, PoseRefinement.reason
            )
        ).all()
        odometry = session.execute(
            select(PoseRefinement.odometry, func.count()).group_by(PoseRefinement.odometry)
        ).all()
        on_map = session.execute(
            select(func.count()).where(
                PoseRefinement.outcome == REGISTERED, PoseRefinement.map_pairs_used > 0
            )
        ).scalar_one()
    return {
        "layers": layers,
        "frames_posed": int(posed),
        "frames_skipped": {str(k): int(v) for k, v in sorted(skipped.items())},
        "sequences_pending": len(pending_sequences(catalog)),
        "sequences_refined": sum(int(n) for outcome, _, n in refinements if outcome == REGISTERED),
        # Of those, the sequences registered with other sequences' frames in the map.
        "sequences_aligned_to_map": int(on_map),
        "sequences_not_refined": {
            str(reason): int(n)
            for outcome, reason, n in sorted(refinements, key=str)
            if outcome != REGISTERED
        },
        # Sequences whose device's odometry was refused (a broken distance counter), by why.
        "sequences_odometry_ignored": {
            str(status): int(n)
            for status, n in sorted(odometry, key=str)
            if status not in (None, ODOMETRY_USED)
        },
    }
