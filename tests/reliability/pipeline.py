"""A simulated drive through the whole server pipeline — validation, privacy audit (real models),
matching, poses, imagery tiles, coverage and freshness layers, reward bins — once in this process
without faults (the reference), and through real Celery workers and a real beat while faults are
injected; what a run leaves behind, to compare with the reference byte for byte.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy import func, select

from ingest.audit import audit_frames
from ingest.catalog import Frame, FrameState, utcnow
from ingest.db import Catalog
from ingest.protocol import CameraCalibration
from ingest.queues import (
    AUDIT_QUEUE,
    INGEST_QUEUE,
    MATCH_QUEUE,
    REWARDS_QUEUE,
    TILES_QUEUE,
    VALIDATE_TASK,
    create_celery_app,
)
from ingest.states import SequenceKey
from ingest.storage import ObjectStore
from ingest.tasks import worker_scanner
from ingest.validate import IngestContext, validate_frames
from mapbuilder.catalog import FrameMatch, load_network
from mapbuilder.layers.marking import mark_segments_dirty, segments_of_sequences
from mapbuilder.match_stage import match_sequences
from mapbuilder.matching.matcher import MapMatcher
from mapbuilder.tiles.catalog import TileRow
from mapbuilder.tiles.context import IMAGERY, TileContext
from mapbuilder.tiles.layers import EAGER_MIN_ZOOM
from mapbuilder.tiles.pipeline import build_dirty
from mapbuilder.tiles.posing import pending_sequences, update_poses
from rewards.binsummary import dirty_pairs, refresh_bins
from rewards.settings import RewardsSettings
from roadswarm.map_layers import build_layers
from roadswarm.sim.world import World
from roadswarm.stack import WorkerProcess
from tests.reliability.services import BeatProcess
from tests.reliability.task_probe import PROBE_DIR_ENV
from tests.tile_helpers import Keyframe, seed_drive, store_world_roads

REPO_ROOT = Path(__file__).resolve().parents[2]
DEVICE = "reliability-device"
FRAMES = 24
SEQUENCE_STARTS = (0, 12, 18)
"""Three sequences (three batches, so three of each task along the pipeline). Which of a
device's near-identical frames is quarantined depends on the order batches are validated in;
cut here, frame 9 is kept and 5, 7 and 11 go (11 before 17 can meet it) in any order."""
# Two pool processes: while the pool's supervisor notices a killed one (up to 5 s), the other
# carries on, as on any worker with more than one process.
WORKER_PROCESSES = 2
PIPELINE_QUEUES = (INGEST_QUEUE, AUDIT_QUEUE, MATCH_QUEUE, TILES_QUEUE, REWARDS_QUEUE)
TERMINAL = {FrameState.ACCEPTED.value, FrameState.QUARANTINED.value}
TASK_MODULES = (
    "ingest.tasks",
    "mapbuilder.tasks",
    "mapbuilder.tile_tasks",
    "roadswarm.layer_tasks",
    "rewards.tasks",
    "tests.reliability.task_probe",
)
"""The pipeline's task modules (`roadswarm.worker_app`'s, less the simulator's) and the probe."""

# Timings shortened for the suite (production: visibility 3600 s, reconciler every 60 s, frames
# re-queued after 600 s, sweeps every 300 s): recovery within seconds instead of minutes.
FAST_RECOVERY = {
    "ROADSWARM_VISIBILITY_TIMEOUT_S": "15",
    "ROADSWARM_TASK_TIME_LIMIT_S": "12",
    # A block's lease outlives the task time limit, as in production (1800 s each): a builder that
    # died with its worker leaves a lease that lapses within the settle window.
    "ROADSWARM_TILES_BLOCK_LEASE_S": "15",
    "ROADSWARM_RECONCILE_EVERY_S": "1",
    "ROADSWARM_TILES_SWEEP_EVERY_S": "2",
    "ROADSWARM_REWARDS_BINS_EVERY_S": "2",
    "ROADSWARM_VALIDATION_STUCK_AFTER_S": "8",
}


@dataclass(frozen=True)
class Drive:
    """A drive's keyframes cut into sequences (one batch each), its camera and world, and the
    capture time of its first frame."""

    sequences: list[list[Keyframe]]
    camera: CameraCalibration
    world: World
    start: datetime

    @classmethod
    def cut(
        cls, frames: list[Keyframe], camera: CameraCalibration, world: World, start: datetime
    ) -> Drive:
        """The first frames cut into sequences at `SEQUENCE_STARTS`."""
        bounds = [*SEQUENCE_STARTS, FRAMES]
        return cls([frames[a:b] for a, b in itertools.pairwise(bounds)], camera, world, start)

    @property
    def keys(self) -> list[SequenceKey]:
        """The (device, sequence) pairs."""
        return [(DEVICE, f"drive-{k}") for k in range(len(self.sequences))]

    def batches(self) -> list[list[str]]:
        """The frame ids of each sequence."""
        return [[frame.frame_id for frame in frames] for frames in self.sequences]


def seed(catalog: Catalog, store: ObjectStore, drive: Drive) -> None:
    """The world's roads, and the drive's frames stored and committed (`received`)."""
    store_world_roads(catalog, drive.world)
    for (device, sequence), frames in zip(drive.keys, drive.sequences, strict=True):
        seed_drive(
            catalog,
            store,
            frames,
            device_id=device,
            sequence_id=sequence,
            camera=drive.camera,
            start=drive.start,
            state=FrameState.RECEIVED,
        )


def run_in_process(catalog: Catalog, store: ObjectStore, drive: Drive) -> None:
    """The fault-free reference: each stage the tasks run, once, in order, in this process."""
    ctx = IngestContext(catalog, store)
    for batch in drive.batches():
        validated = validate_frames(ctx, batch)
        audit_frames(ctx, worker_scanner(), validated.advanced)
    keys = drive.keys
    match_sequences(catalog, MapMatcher(load_network(catalog)), keys)
    tiles = TileContext(catalog, store)
    update_poses(tiles, keys)
    build_dirty(tiles)
    mark_segments_dirty(catalog, segments_of_sequences(catalog, keys), now=utcnow())
    build_layers(catalog, store, now=utcnow(), min_zoom=EAGER_MIN_ZOOM)
    refresh_bins(catalog, RewardsSettings().params())


def send_drive(broker_url: str, drive: Drive) -> None:
    """Queue the validation of each batch, as the API does when a device commits one."""
    app = create_celery_app(broker_url)
    try:
        for batch in drive.batches():
            app.send_task(VALIDATE_TASK, args=[batch], queue=INGEST_QUEUE)
    finally:
        app.close()


class PipelineStack:
    """A real worker on every pipeline queue and a real beat, configured by the environment
    (fast recovery timings, the task probe); `crash_worker` SIGKILLs the worker and starts
    another."""

    def __init__(
        self, *, broker_url: str, database_url: str, store_dir: Path, workdir: Path
    ) -> None:
        self.broker_url = broker_url
        self.workdir = workdir
        self.probe_dir = workdir / "probe"
        self.probe_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **FAST_RECOVERY,
            "ROADSWARM_DATABASE_URL": database_url,
            "ROADSWARM_STORE_DIR": str(store_dir),
            "ROADSWARM_TASK_MODULES": ",".join(TASK_MODULES),
            PROBE_DIR_ENV: str(self.probe_dir),
        }
        beat_env = {**os.environ, **self.env, "ROADSWARM_BROKER_URL": broker_url}
        self.beat = BeatProcess(workdir, beat_env, REPO_ROOT)
        self.worker = self._new_worker()
        self.workers_started = 0

    def __enter__(self) -> Self:
        """Start the worker, then the beat."""
        self.worker.start()
        self.workers_started = 1
        self.beat.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the beat and the worker."""
        self.beat.crash()
        self.worker.stop()

    def _new_worker(self) -> WorkerProcess:
        return WorkerProcess(
            "roadswarm.worker_app",
            broker_url=self.broker_url,
            workdir=self.workdir / "worker",
            queues=PIPELINE_QUEUES,
            concurrency=WORKER_PROCESSES,
            name="reliability",
            extra_env=self.env,
            python_path=[REPO_ROOT],
            startup_timeout_s=120.0,
        )

    def crash_worker(self) -> None:
        """SIGKILL the worker's whole process group (a host crash), then start a new worker."""
        self.kill_worker()
        self.start_worker()

    def kill_worker(self) -> None:
        """SIGKILL the worker's whole process group: main process and pool, with what they hold."""
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.stop()

    def start_worker(self) -> None:
        """Start a new worker (after `kill_worker`)."""
        self.worker = self._new_worker()
        self.worker.start()
        self.workers_started += 1


def outstanding(catalog: Catalog) -> dict[str, int]:
    """What the pipeline still has to do (empty when every frame is home)."""
    with catalog.session() as session:
        rows = session.execute(select(Frame.state, func.count()).group_by(Frame.state))
        states = {state: int(n) for state, n in rows}
        unmatched = session.scalar(
            select(func.count())
            .select_from(Frame)
            .outerjoin(FrameMatch, FrameMatch.frame_id == Frame.frame_id)
            .where(Frame.state == FrameState.ACCEPTED, FrameMatch.frame_id.is_(None))
        )
        dirty_tiles = session.execute(
            select(TileRow.layer, func.count())
            .where(TileRow.dirty_since.is_not(None))
            .where((TileRow.layer == IMAGERY) | (TileRow.z >= EAGER_MIN_ZOOM))
            .group_by(TileRow.layer)
        )
        counts = {f"frames_{state.value}": n for state, n in states.items()}
        counts |= {f"dirty_{layer}_tiles": int(n) for layer, n in dirty_tiles}
        counts |= {
            "accepted_unmatched": int(unmatched or 0),
            "dirty_reward_pairs": dirty_pairs(session),
        }
    counts["sequences_unposed"] = len(pending_sequences(catalog))
    return {k: n for k, n in counts.items() if n and k.removeprefix("frames_") not in TERMINAL}


def wait_settled(catalog: Catalog, timeout_s: float) -> float:
    """Wait until nothing is outstanding; the seconds it took. Fail with what is left."""
    started = time.monotonic()
    left: dict[str, int] = {}
    while time.monotonic() - started < timeout_s:
        left = outstanding(catalog)
        if not left:
            return time.monotonic() - started
        time.sleep(0.5)
    msg = f"the pipeline did not settle within {timeout_s:.0f} s: {left}"
    raise AssertionError(msg)
