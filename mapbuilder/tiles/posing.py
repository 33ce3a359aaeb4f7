"""Poses of matched frames in the catalog, and the imagery tiles they make dirty.

`update_poses` poses each sequence (the smoothed track, then refined by registration unless
`TileSettings.refine_poses` is off), stores each frame's pose (or the reason it has none) with
how the refinement went, in one transaction, and marks the top-zoom tiles under every footprint
that appeared, moved or went away. A sequence matched again with a later batch is refined again
as a whole, so its poses may all move a little and its tiles are rebuilt; the same inputs again
give the stored poses back and mark nothing.

Two workers may pose one sequence at once, one of them from fewer matched frames (a batch matched
meanwhile), and that one may store last. So once its poses are stored, `update_poses` reads each
sequence's matched frames again and names those that changed to be posed again (with
`PoseUpdate.realign`): the last to store always follows with the sequence as it now is.

Poses that moved concern the later sequences aligned to them: those are marked in the same
transaction (`PoseRefinement.map_moved_since`) and named in `PoseUpdate.realign`. A worker that
dies after the commit cannot queue them, and its task delivered again finds nothing moved; the
mark stays until they are posed again, and `pending_sequences` (the sweep) finds them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select, tuple_, update
from sqlalchemy.orm import Session

from ingest.catalog import Frame, FrameState, utcnow
from ingest.db import Catalog
from ingest.states import SequenceKey
from mapbuilder.camera import Calibration
from mapbuilder.catalog import FrameMatch
from mapbuilder.settings import MatchSettings
from mapbuilder.tiles.bev import BevSettings, FramePose, FrameProjector
from mapbuilder.tiles.catalog import FramePoseRow, PoseRefinement, PoseSkip, TileRow
from mapbuilder.tiles.context import IMAGERY, TileContext
from mapbuilder.tiles.dirty import Block, block_of, dialect_insert, mark_dirty
from mapbuilder.tiles.map_frames import sequence_order
from mapbuilder.tiles.mercator import Tile
from mapbuilder.tiles.poses import CatalogPose, Poses, matched_digest, poses_for
from mapbuilder.tiles.refiner import REGISTERED, CatalogRefiner, RefinementOutcome

# The footprint of a frame depends on the BEV settings only, not on the camera.
_FOOTPRINT_CAMERA = Calibration()
# Rounds of posing again sequences whose map or matched frames changed (`PoseUpdate.realign`):
# each round reaches sequences that arrived later or a batch that arrived meanwhile, so a chain
# this long means something keeps changing.
MAX_REALIGN_ROUNDS = 20
_ID_CHUNK = 500


@dataclass(frozen=True)
class PoseUpdate:
    """What `update_poses` did: frames posed and skipped (by reason), tiles and blocks dirtied,
    sequences refined now and those that keep their smoothed poses (by reason); sequences whose
    inputs were refined before count in neither. `realign`: sequences to pose next, whose map
    changed (`CatalogRefiner.followers` of moved poses, `CatalogRefiner.stale_maps`) or whose
    matched frames changed while they were posed."""

    posed: int
    skipped: dict[str, int]
    tiles_marked: int
    blocks: list[Block]
    refined: int = 0
    not_refined: dict[str, int] = field(default_factory=dict)
    realign: list[SequenceKey] = field(default_factory=list)


def update_poses(
    ctx: TileContext, keys: Sequence[SequenceKey], *, refine: bool | None = None
) -> PoseUpdate:
    """Pose the matched frames of these sequences (refined unless `refine` is False, default
    `ctx.settings.refine_poses`) and mark the tiles whose frames changed."""
    wanted = ctx.settings.refine_poses if refine is None else refine
    # Read before anything the poses depend on: a mark made after this may concern a map read
    # before it, and must stay.
    marks = _map_marks(ctx.catalog, keys)
    refiner = CatalogRefiner(ctx.catalog, ctx.store, memo=ctx.registrations) if wanted else None
    # In the map's order: a sequence is aligned to those that reached the catalog before it,
    # which are then refined (in this run) before it.
    order = sequence_order(ctx.catalog, keys)
    poses = poses_for(
        ctx.catalog,
        sorted(keys, key=lambda key: order.get(key, (math.inf, *key))),
        max_offroad_m=ctx.settings.max_offroad_m,
        options=MatchSettings().sequence_options(),
        refine=refiner,
    )
    outcomes = refiner.outcomes if refiner else []
    now = utcnow()
    followers: list[SequenceKey] = []
    with ctx.catalog.session() as session:
        touched, moved = _store_poses(session, poses, ctx.bev, now)
        _store_refinements(session, outcomes, now)
        _clear_map_moved(session, marks)
        if refiner:
            followers = refiner.followers(keys, moved)
            _mark_map_moved(session, followers, now)
        marked = mark_dirty(session, IMAGERY, touched, now)
    blocks = sorted({block_of(t, ctx.settings.block_tiles) for t in touched})
    refined = sum(o.outcome == REGISTERED for o in outcomes)
    not_refined = _counts(str(o.reason) for o in outcomes if o.outcome != REGISTERED)
    stale = refiner.stale_maps() if refiner else []
    return PoseUpdate(
        len(poses.posed),
        _counts(skip.reason for skip in poses.skipped),
        marked,
        blocks,
        refined,
        not_refined,
        sorted({*followers, *stale, *_changed_meanwhile(ctx, poses)}),
    )


def _refinement_of(key: SequenceKey) -> tuple[ColumnElement[bool], ...]:
    """The conditions for one sequence's refinement record."""
    device_id, sequence_id = key
    return PoseRefinement.device_id == device_id, PoseRefinement.sequence_id == sequence_id


def _mark_map_moved(session: Session, keys: Sequence[SequenceKey], now: datetime) -> None:
    """Mark the refinements of these sequences: the map they were aligned to moved."""
    # Sorted: two tasks marking overlapping sets take the rows in one order.
    for key in sorted(keys):
        session.execute(
            update(PoseRefinement)
            .where(*_refinement_of(key))
            .values(
                map_moved_version=PoseRefinement.map_moved_version + 1,
                map_moved_since=func.coalesce(PoseRefinement.map_moved_since, now),
            )
        )


def _map_marks(catalog: Catalog, keys: Sequence[SequenceKey]) -> dict[SequenceKey, int]:
    """How often the map of each of these sequences was marked moved (those refined before)."""
    found: dict[SequenceKey, int] = {}
    wanted = sorted(set(keys))
    with catalog.session() as session:
        for start in range(0, len(wanted), _ID_CHUNK):
            chunk = wanted[start : start + _ID_CHUNK]
            rows = session.execute(
                select(
                    PoseRefinement.device_id,
                    PoseRefinement.sequence_id,
                    PoseRefinement.map_moved_version,
                ).where(tuple_(PoseRefinement.device_id, PoseRefinement.sequence_id).in_(chunk))
            )
            found.update({(device, sequence): int(n) for device, sequence, n in rows})
    return found


def _clear_map_moved(session: Session, read: dict[SequenceKey, int]) -> None:
    """Clear the map-moved mark of each sequence posed here (aligned anew, or with no frames
    left to align), unless it was marked again after it was read (at `read[key]` marks): the
    map it was aligned to may then be older."""
    for key, version in sorted(read.items()):
        session.execute(
            update(PoseRefinement)
            .where(*_refinement_of(key), PoseRefinement.map_moved_version == version)
            .values(map_moved_since=None)
        )


def _changed_meanwhile(ctx: TileContext, poses: Poses) -> list[SequenceKey]:
    """Sequences matched again after they were read here: another worker may have stored the
    newer poses first, and these would then have replaced them (see the module doc)."""
    return [key for key, read in poses.read.items() if matched_digest(ctx.catalog, key) != read]


def _counts(reasons: Iterable[str]) -> dict[str, int]:
    """How often each reason occurs."""
    counts: dict[str, int] = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def _store_refinements(
    session: Session, outcomes: Sequence[RefinementOutcome], now: datetime
) -> None:
    """Insert or replace each sequence's refinement record."""
    if not outcomes:
        return
    rows = [
        {
            "device_id": o.key[0],
            "sequence_id": o.key[1],
            "inputs_sha256": o.inputs_sha256,
            "outcome": o.outcome,
            "reason": o.reason,
            "detail": o.detail,
            "frames": o.frames,
            "pairs_tried": o.pairs_tried,
            "pairs_used": o.pairs_used,
            "frames_on_lanes": o.frames_on_lanes,
            "seconds": round(o.seconds, 3),
            "refined_at": now,
            "odometry": o.odometry,
            "map_pairs_used": o.map_pairs_used,
        }
        for o in outcomes
    ]
    statement = dialect_insert(session)(PoseRefinement.__table__)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["device_id", "sequence_id"],
            set_={name: statement.excluded[name] for name in rows[0] if not name.endswith("_id")},
        ),
        rows,
    )


def footprint_tiles(pose: FramePose, bev: BevSettings) -> list[Tile]:
    """Top-zoom tiles the ground a frame contributes can touch."""
    return FrameProjector(_FOOTPRINT_CAMERA, bev).tiles(pose)


def _store_poses(
    session: Session, poses: Poses, bev: BevSettings, now: datetime
) -> tuple[set[Tile], list[FramePose]]:
    """Upsert poses and skips; return the tiles under every footprint that appeared, moved or
    went away (a re-matched sequence usually changes only its last few seconds), and those
    poses, before and after."""
    ids = [p.frame_id for p in poses.posed] + [s.frame_id for s in poses.skipped]
    old = _existing_poses(session, ids)
    moved: list[FramePose] = []
    changed = []
    for posed in poses.posed:
        row = old.get(posed.frame_id)
        if row is not None and _same_pose(row, posed):
            continue
        if row is not None:
            moved.append(_pose_of(row, posed.pose.time_s))
        moved.append(posed.pose)
        changed.append(_pose_values(posed, now))
    _upsert_poses(session, changed)
    gone = [skip.frame_id for skip in poses.skipped if skip.frame_id in old]
    moved.extend(_pose_of(old[frame_id], 0.0) for frame_id in gone)
    _delete_poses(session, gone)
    _replace_skips(session, poses, now)
    return {tile for pose in moved for tile in footprint_tiles(pose, bev)}, moved


def _upsert_poses(session: Session, rows: list[dict[str, object]]) -> None:
    """Insert or replace pose rows (two tasks posing one sequence at once must not collide)."""
    if not rows:
        return
    table = FramePoseRow.__table__
    statement = dialect_insert(session)(table)
    columns = ("lon", "lat", "heading_deg", "camera_id", "source", "computed_at")
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["frame_id"],
            set_={name: statement.excluded[name] for name in columns},
        ),
        rows,
    )


def _delete_poses(session: Session, frame_ids: list[str]) -> None:
    for start in range(0, len(frame_ids), _ID_CHUNK):
        chunk = frame_ids[start : start + _ID_CHUNK]
        session.execute(delete(FramePoseRow).where(FramePoseRow.frame_id.in_(chunk)))


def _existing_poses(session: Session, frame_ids: list[str]) -> dict[str, FramePoseRow]:
    """The stored poses of these frames, by frame id."""
    found: dict[str, FramePoseRow] = {}
    for start in range(0, len(frame_ids), _ID_CHUNK):
        chunk = frame_ids[start : start + _ID_CHUNK]
        rows = session.scalars(select(FramePoseRow).where(FramePoseRow.frame_id.in_(chunk)))
        found.update({row.frame_id: row for row in rows})
    return found


def _same_pose(row: FramePoseRow, posed: CatalogPose) -> bool:
    pose = posed.pose
    return (row.lon, row.lat, row.heading_deg, row.camera_id, row.source) == (
        pose.lon,
        pose.lat,
        pose.heading_deg,
        posed.camera_id,
        posed.source,
    )


def _pose_of(row: FramePoseRow, time_s: float) -> FramePose:
    return FramePose(row.lon, row.lat, row.heading_deg, time_s)


def _pose_values(posed: CatalogPose, now: datetime) -> dict[str, object]:
    pose = posed.pose
    return {
        "frame_id": posed.frame_id,
        "lon": pose.lon,
        "lat": pose.lat,
        "heading_deg": pose.heading_deg,
        "camera_id": posed.camera_id,
        "source": posed.source,
        "computed_at": now,
    }


def _replace_skips(session: Session, poses: Poses, now: datetime) -> None:
    """Skip rows for the skipped frames (replaced), none for the posed ones (a reason can go)."""
    posed = [p.frame_id for p in poses.posed]
    for start in range(0, len(posed), _ID_CHUNK):
        chunk = posed[start : start + _ID_CHUNK]
        session.execute(delete(PoseSkip).where(PoseSkip.frame_id.in_(chunk)))
    if not poses.skipped:
        return
    statement = dialect_insert(session)(PoseSkip.__table__)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["frame_id"],
            set_={name: statement.excluded[name] for name in ("reason", "detail", "recorded_at")},
        ),
        [
            {"frame_id": s.frame_id, "reason": s.reason, "detail": s.detail, "recorded_at": now}
            for s in poses.skipped
        ],
    )


def pending_sequences(catalog: Catalog) -> list[SequenceKey]:
    """Sequences with matched, accepted frames that have neither a pose nor a skip reason yet,
    and those whose map moved since they were aligned to it (a realignment not done yet)."""
    with catalog.session() as session:
        moved = session.execute(
            select(PoseRefinement.device_id, PoseRefinement.sequence_id).where(
                PoseRefinement.map_moved_since.is_not(None)
            )
        ).all()
        rows = session.execute(
            select(Frame.device_id, Frame.sequence_id)
            .distinct()
            .join(FrameMatch, FrameMatch.frame_id == Frame.frame_id)
            .outerjoin(FramePoseRow, FramePoseRow.frame_id == Frame.frame_id)
            .outerjoin(PoseSkip, PoseSkip.frame_id == Frame.frame_id)
            .where(
                Frame.state == FrameState.ACCEPTED,
                FramePoseRow.frame_id.is_(None),
                PoseSkip.frame_id.is_(None),
            )
        ).all()
    return sorted({(device, sequence) for device, sequence in [*rows, *moved]})


def mark_everything(ctx: TileContext) -> int:
    """Mark every top-zoom tile of the layer dirty: those built and those any posed frame
    touches (`--all`: after a change of settings, rebuild it all)."""
    tiles: set[Tile] = set()
    with ctx.catalog.session() as session:
        for lon, lat, heading in session.execute(
            select(FramePoseRow.lon, FramePoseRow.lat, FramePoseRow.heading_deg)
        ):
            tiles.update(footprint_tiles(FramePose(lon, lat, heading, 0.0), ctx.bev))
        built = session.execute(
            select(TileRow.x, TileRow.y).where(TileRow.layer == IMAGERY, TileRow.z == ctx.bev.zoom)
        )
        tiles.update((ctx.bev.zoom, x, y) for x, y in built)
        return mark_dirty(session, IMAGERY, tiles, utcnow())
