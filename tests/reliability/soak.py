"""The soak: simulated drivers stream signed batches into the full stack — the ingest API served
by uvicorn on loopback, a real Celery worker on every pipeline queue and a real beat on Redis,
a fresh PostgreSQL catalog — while the queues, states and tiles are watched; then the load stops
and the queues must drain, every frame reaching a terminal state once.

Timings are production's (a frame is re-queued only after 600 s pending), except that the reward
summary is refreshed every 5 s instead of 5 minutes, so its marks drain within the test.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import func, select

from ingest.catalog import Batch, DeadLetter, Frame, Quarantine
from ingest.db import Catalog
from ingest.queues import create_celery_app
from roadswarm.sim.world import World
from roadswarm.stack import WorkerProcess
from tests.ingest_helpers import postgres_database, served_api
from tests.reliability.pipeline import PIPELINE_QUEUES, REPO_ROOT, TASK_MODULES, outstanding
from tests.reliability.services import BeatProcess
from tests.reliability.soak_drivers import Driver, DriverLog, Route
from tests.reliability.soak_watch import (
    Latencies,
    Sample,
    Watch,
    WorkerLog,
    latencies,
    read_worker_log,
)
from tests.tile_helpers import store_world_roads

SOAK_REDIS_URL = "redis://127.0.0.1:6379/15"
"""The soak's own database on the shared Redis (flushed at each run)."""
SOAK_TIMINGS = {"ROADSWARM_REWARDS_BINS_EVERY_S": "5"}


@dataclass(frozen=True)
class SoakPlan:
    """How many drivers, their routes, how fast they stream, and how long the queues may take
    to drain once the load stops."""

    drivers: int
    speedup: float = 1.0
    batch_s: float = 2.0
    drain_s: float = 60.0
    concurrency: int = 2


@dataclass(frozen=True)
class SoakRun:
    """What a soak left: the drivers' logs, the samples, the load window (seconds on the
    watch's clock), the drain time (None: not drained within the plan's bound) and the
    catalog's figures, and the worker's log."""

    logs: list[DriverLog]
    samples: list[Sample]
    load_s: tuple[float, float]
    drained_s: float | None
    left: dict[str, int]
    states: dict[str, int]
    frame_rows: int
    batch_rows: int
    quarantine_reasons: dict[str, int]
    dead_letters: int
    latency: Latencies
    worker: WorkerLog


def run_soak(plan: SoakPlan, world: World, routes: list[Route], workdir: Path) -> SoakRun:
    """Stream `routes` (dealt round-robin to `plan.drivers` drivers) through the stack."""
    with redis.Redis.from_url(SOAK_REDIS_URL) as broker:
        broker.flushdb()
    with postgres_database() as url:
        catalog = Catalog.connect(url)
        try:
            store_world_roads(catalog, world)
            return _run(plan, catalog, url, routes, workdir)
        finally:
            catalog.dispose()


def _run(plan: SoakPlan, catalog: Catalog, url: str, routes: list[Route], workdir: Path) -> SoakRun:
    app = create_celery_app(SOAK_REDIS_URL)
    try:
        with (
            pipeline_stack(url, workdir, plan.concurrency) as worker,
            served_api(catalog, workdir / "store", celery=app) as api,
        ):
            watch = Watch(catalog, SOAK_REDIS_URL)
            watch.start()
            try:
                drivers, load_s = _drive(plan, api.url, routes, watch)
                drained = _wait_drained(watch, catalog, plan.drain_s)
                left = outstanding(catalog)
            finally:
                watch.stop()
    finally:
        app.close()
    if watch.error is not None:
        raise watch.error
    return SoakRun(
        [d.log for d in drivers],
        watch.samples,
        load_s,
        drained,
        left,
        *_catalog_figures(catalog),
        latencies(catalog, watch.builds),
        read_worker_log(worker.log_path),
    )


def _drive(
    plan: SoakPlan, api_url: str, routes: list[Route], watch: Watch
) -> tuple[list[Driver], tuple[float, float]]:
    """Start the drivers, wait until each has sent everything; they and the load window."""
    drivers = [
        Driver(api_url, routes[n :: plan.drivers], batch_s=plan.batch_s, speedup=plan.speedup)
        for n in range(plan.drivers)
    ]
    load_from = time.monotonic() - watch.started
    for driver in drivers:
        driver.start()
    for driver in drivers:
        driver.join()
    return drivers, (load_from, time.monotonic() - watch.started)


@contextmanager
def pipeline_stack(database_url: str, workdir: Path, concurrency: int) -> Iterator[WorkerProcess]:
    """A real worker on every pipeline queue, then a real beat, on the soak's Redis database."""
    env = {
        **SOAK_TIMINGS,
        "ROADSWARM_DATABASE_URL": database_url,
        "ROADSWARM_STORE_DIR": str(workdir / "store"),
        "ROADSWARM_TASK_MODULES": ",".join(m for m in TASK_MODULES if not m.startswith("tests.")),
    }
    worker = WorkerProcess(
        "roadswarm.worker_app",
        broker_url=SOAK_REDIS_URL,
        workdir=workdir / "worker",
        queues=PIPELINE_QUEUES,
        concurrency=concurrency,
        name="soak",
        extra_env=env,
        python_path=[REPO_ROOT],
        startup_timeout_s=120.0,
    )
    beat_env = {**os.environ, **env, "ROADSWARM_BROKER_URL": SOAK_REDIS_URL}
    with worker, BeatProcess(workdir, beat_env, REPO_ROOT):
        yield worker


def _wait_drained(watch: Watch, catalog: Catalog, bound_s: float) -> float | None:
    """Seconds until every queue is empty and nothing is outstanding in the catalog at once;
    None if that did not happen within `bound_s`."""
    began = time.monotonic()
    while time.monotonic() - began < bound_s:
        if not any(watch.depths().values()) and not outstanding(catalog):
            return time.monotonic() - began
        time.sleep(0.5)
    return None


def _catalog_figures(
    catalog: Catalog,
) -> tuple[dict[str, int], int, int, dict[str, int], int]:
    """Frames per state, frame and batch rows, quarantine rows per reason, dead letters."""
    with catalog.session() as session:
        rows = session.execute(select(Frame.state, func.count()).group_by(Frame.state))
        states = {state.value: int(n) for state, n in rows}
        frames = int(session.scalar(select(func.count()).select_from(Frame)) or 0)
        batches = int(session.scalar(select(func.count()).select_from(Batch)) or 0)
        reasons = session.execute(
            select(Quarantine.reason, func.count()).group_by(Quarantine.reason)
        )
        quarantine = {reason: int(n) for reason, n in reasons}
        dead = int(session.scalar(select(func.count()).select_from(DeadLetter)) or 0)
    return states, frames, batches, quarantine, dead
