"""What the soak test watches while it runs: the depth of every Celery queue on Redis, the
frames per state, and each z21 imagery tile's builds (from `map_tiles.built_at`), sampled in a
thread; and what it derives afterwards: upload-to-tile latency per frame.

Upload-to-tile latency of a frame = the time its last z21 imagery tile was written with it minus
its commit (`frames.received_at`, set by the API in the commit's transaction). A tile is written
with the frame at its first build (`built_at`) at or after the frame's final pose was computed
(`frame_poses.computed_at`, in the transaction that marked the tile dirty). Builds are seen by
sampling, so a tile built twice within one sampling interval shows only its later build: the
latency is then overstated by up to that interval, never understated.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis
from sqlalchemy import func, select

from ingest.catalog import Frame, FrameState
from ingest.db import Catalog
from mapbuilder.tiles.bev import BevSettings, FramePose
from mapbuilder.tiles.catalog import FramePoseRow, TileRow
from mapbuilder.tiles.context import IMAGERY
from mapbuilder.tiles.layers import layer
from mapbuilder.tiles.mercator import Tile
from mapbuilder.tiles.posing import footprint_tiles
from tests.reliability.pipeline import PIPELINE_QUEUES

SUCCEEDED = re.compile(r"Task ([\w.]+)\[[^\]]+\] succeeded in ([0-9.]+)s")
UNACKED = "unacked"
"""Kombu's hash of messages delivered to a worker and not yet acknowledged (running or reserved)."""


@dataclass(frozen=True)
class Sample:
    """One look at the stack, `t_s` seconds after the watch started."""

    t_s: float
    queues: dict[str, int]
    states: dict[str, int]

    @property
    def queued(self) -> int:
        """Messages waiting or held by a worker, all queues together."""
        return sum(self.queues.values())


class Watch(threading.Thread):
    """Samples the queues, the frame states and the imagery tiles' builds every `every_s`."""

    def __init__(self, catalog: Catalog, broker_url: str, *, every_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.catalog = catalog
        self.redis = redis.Redis.from_url(broker_url)
        self.every_s = every_s
        self.started = time.monotonic()
        self.samples: list[Sample] = []
        self.builds: dict[Tile, set[datetime]] = defaultdict(set)
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        """Sample until stopped; an error ends the watch and is kept for the test to report."""
        try:
            while not self._halt.wait(self.every_s):
                self.samples.append(self.sample())
        except Exception as exc:  # reported by the test
            self.error = exc

    def stop(self) -> None:
        """Stop sampling, wait for the thread, then take a last sample: builds recorded since
        the thread's last one would otherwise be missed."""
        self._halt.set()
        self.join(timeout=30)
        try:
            self.samples.append(self.sample())
        finally:
            self.redis.close()

    def depths(self) -> dict[str, int]:
        """Messages waiting in each pipeline queue, and those held by workers."""
        pipe = self.redis.pipeline()
        for queue in PIPELINE_QUEUES:
            pipe.llen(queue)
        pipe.hlen(UNACKED)
        depths = pipe.execute()
        return dict(zip([*PIPELINE_QUEUES, UNACKED], (int(d) for d in depths), strict=True))

    def sample(self) -> Sample:
        """Queue depths and frame states now; records the tile builds seen."""
        queues = self.depths()
        top = layer(IMAGERY).max_zoom
        with self.catalog.session() as session:
            rows = session.execute(select(Frame.state, func.count()).group_by(Frame.state))
            states = {state.value: int(n) for state, n in rows}
            built = session.execute(
                select(TileRow.x, TileRow.y, TileRow.built_at).where(
                    TileRow.layer == IMAGERY, TileRow.z == top, TileRow.built_at.is_not(None)
                )
            )
            for x, y, at in built:
                if at is not None:  # filtered by the query; the column is nullable
                    self.builds[(top, x, y)].add(at)
        return Sample(round(time.monotonic() - self.started, 2), queues, states)


@dataclass(frozen=True)
class Latencies:
    """Seconds per accepted frame: commit to accepted, and commit to its tiles written; posed
    frames none of whose tiles was seen built after its pose are counted, not guessed."""

    to_accepted: list[float]
    to_tiles: list[float]
    posed: int
    tiles_unseen: int


def latencies(catalog: Catalog, builds: dict[Tile, set[datetime]]) -> Latencies:
    """Upload-to-accepted and upload-to-tile latency of every accepted frame (module docstring)."""
    bev = BevSettings()
    accepted = Frame.state == FrameState.ACCEPTED
    with catalog.session() as session:
        times = session.execute(select(Frame.received_at, Frame.state_since).where(accepted)).all()
        posed = session.execute(
            select(Frame.received_at, FramePoseRow)
            .join(FramePoseRow, FramePoseRow.frame_id == Frame.frame_id)
            .where(accepted)
        ).all()
    to_accepted = [(since - received).total_seconds() for received, since in times]
    to_tiles, unseen = [], 0
    for received, pose in posed:
        tiles = footprint_tiles(FramePose(pose.lon, pose.lat, pose.heading_deg, 0.0), bev)
        written = _written(tiles, pose.computed_at, builds)
        if written is None:
            unseen += 1
        else:
            to_tiles.append((written - received).total_seconds())
    return Latencies(to_accepted, to_tiles, len(posed), unseen)


def _written(
    tiles: list[Tile], posed_at: datetime, builds: dict[Tile, set[datetime]]
) -> datetime | None:
    """When the last of the frame's tiles was first built after its pose (a footprint tile that
    saw no ground is never built, so only built ones count); None if none was."""
    firsts = [min((b for b in builds.get(t, ()) if b >= posed_at), default=None) for t in tiles]
    seen = [b for b in firsts if b is not None]
    return max(seen) if seen else None


@dataclass(frozen=True)
class WorkerLog:
    """From a worker's log: its ERROR lines, and per task the runs that succeeded and their
    seconds in all."""

    errors: list[str]
    tasks: dict[str, tuple[int, float]]


def read_worker_log(path: Path) -> WorkerLog:
    """Parse a Celery worker's log (the format `celery worker` writes at INFO)."""
    errors, tasks = [], dict[str, tuple[int, float]]()
    for line in path.read_text(errors="replace").splitlines():
        if ": ERROR/" in line or ": CRITICAL/" in line:
            errors.append(line)
        elif found := SUCCEEDED.search(line):
            runs, seconds = tasks.get(found[1], (0, 0.0))
            tasks[found[1]] = (runs + 1, seconds + float(found[2]))
    return WorkerLog(errors, tasks)
