"""The poses the production tile pipeline gives a simulated drive: the pipeline side of
bench_tiles.

The keyframes go into a fresh SQLite catalog and local store as ingest leaves them (accepted
frames at the receiver's positions, headings, HDOP and Doppler speeds, with the distance the
edge's odometry records), the real matcher matches them on the world's roads, and
`mapbuilder.tiles.posing.update_poses` poses them: the smoothed track, refined from what the
catalog holds (lane lines from the matched segments, steps from the odometry). The stored poses
are what the workers stitch. Several passes over the same roads (`pipeline_passes`) are seeded
and posed one after another in one catalog, each by another device a day later, as they would
arrive: each later pass is aligned to those already in the map.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench._tiles_refine import Reported
from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from mapbuilder.tiles.bev import FramePose
from mapbuilder.tiles.catalog import FramePoseRow, PoseRefinement
from mapbuilder.tiles.context import TileContext
from roadswarm.sim.world import World
from tests.tile_helpers import Keyframe, pose_drive

FIRST_PASS = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class PipelinePoses:
    """Stored poses by keyframe position (None: the pipeline left the frame out), and how the
    sequence's refinement went (with the odometry: "used", or why not)."""

    poses: list[FramePose | None]
    outcome: str
    reason: str | None
    refine_s: float
    pairs_used_share: float
    odometry: str | None
    map_pairs_used: int


def pipeline_poses(
    world: World, drive_dir: Path, frames: list[dict[str, Any]], reported: Reported
) -> PipelinePoses:
    """Seed, match and pose the keyframes in a throw-away catalog; read the stored poses."""
    return pipeline_passes(world, drive_dir, [(frames, reported)])[0]


def pipeline_passes(
    world: World, drive_dir: Path, passes: Sequence[tuple[list[dict[str, Any]], Reported]]
) -> list[PipelinePoses]:
    """Each pass (keyframes and what the receiver reported) seeded, matched and posed in turn
    in one throw-away catalog; the stored poses of each once all are in."""
    with tempfile.TemporaryDirectory(prefix="bench-tiles-pipeline-") as folder:
        catalog = Catalog.connect(f"sqlite:///{Path(folder) / 'catalog.sqlite3'}")
        try:
            ctx = TileContext(catalog, LocalObjectStore(Path(folder) / "store"))
            seeded = []
            for k, (frames, reported) in enumerate(passes):
                keyframes = _keyframes(frames, reported)
                key, _ = pose_drive(
                    ctx,
                    world,
                    keyframes,
                    drive_dir,
                    device_id=f"bench-{k}",
                    start=FIRST_PASS + timedelta(days=k),
                    with_roads=k == 0,
                )
                seeded.append((keyframes, reported, key))
            return [_read(catalog, kf, reported.poses, key) for kf, reported, key in seeded]
        finally:
            catalog.dispose()


def _keyframes(frames: list[dict[str, Any]], reported: Reported) -> list[Keyframe]:
    """The keyframes' JPEGs at what the receiver reported."""
    return [
        Keyframe(Path(f["path"]).read_bytes(), p.lon, p.lat, p.heading_deg, f["t_s"], v, d)
        for f, p, v, d in zip(
            frames, reported.poses, reported.speed_mps, reported.travelled_m, strict=True
        )
    ]


def _read(
    catalog: Catalog, keyframes: list[Keyframe], given: list[FramePose], key: tuple[str, str]
) -> PipelinePoses:
    """The stored poses (with the times the receiver gave) and the refinement record."""
    with catalog.session() as session:
        rows = {
            row.frame_id: (row.lon, row.lat, row.heading_deg)
            for row in session.scalars(select(FramePoseRow))
        }
        refinement = session.get(PoseRefinement, key)
        assert refinement is not None
        poses = [
            FramePose(*rows[k.frame_id], p.time_s) if k.frame_id in rows else None
            for k, p in zip(keyframes, given, strict=True)
        ]
        return PipelinePoses(
            poses,
            refinement.outcome,
            refinement.reason,
            refinement.seconds,
            refinement.pairs_used / max(refinement.pairs_tried, 1),
            refinement.odometry,
            refinement.map_pairs_used,
        )
