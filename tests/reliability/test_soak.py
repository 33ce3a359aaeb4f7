"""Soak: simulated drivers stream signed batches into the full stack on Redis and PostgreSQL
(the API on uvicorn, a worker on every pipeline queue, beat) for a bounded time; the sustained
frames per second, queue depths over time and upload-to-tile latency are printed (`-s`); once the
load stops every queue drains within a bound, every frame committed is in the catalog once, in a
terminal state, every posed frame's tiles were written, and neither the API nor the worker
logged an error.
`ROADSWARM_RELIABILITY_LONG=1` streams ten minutes of driving instead of half a minute."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from roadswarm.sim.world import World
from tests.ingest_helpers import require_redis
from tests.reliability.soak import SoakPlan, SoakRun, run_soak
from tests.reliability.soak_drivers import Route, simulate_routes
from tests.reliability.soak_report import depth_table, figures

pytestmark = pytest.mark.slow
LONG = os.environ.get("ROADSWARM_RELIABILITY_LONG") == "1"
DRIVERS = 3
MINUTES = 10.0 if LONG else 0.5
ROUTE_MINUTES = 2.5 if LONG else 0.5
PLAN = SoakPlan(drivers=DRIVERS, drain_s=600.0 if LONG else 60.0)


@pytest.fixture(scope="module")
def routes(grid_world: World, tmp_path_factory: pytest.TempPathFactory) -> list[Route]:
    """The drivers' simulated drives (real time: the load lasts as long as they drive)."""
    folder = tmp_path_factory.mktemp("soak-routes")
    return simulate_routes(
        grid_world, folder, drivers=DRIVERS, minutes=MINUTES, route_minutes=ROUTE_MINUTES
    )


def test_soak_sustains_the_load_and_drains(
    grid_world: World, routes: list[Route], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every frame sent is committed once and ends accepted or quarantined; the queues drain."""
    require_redis()
    run = run_soak(PLAN, grid_world, routes, tmp_path)
    found = figures(run)
    print("soak:", json.dumps(found))
    print(depth_table(run.samples))
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors
    _assert_complete(run, sum(len(r.frames) for r in routes), found)


def _assert_complete(run: SoakRun, frames: int, found: dict[str, object]) -> None:
    """Nothing lost, nothing twice, everything home, and the tiles of every posed frame."""
    errors = [log.error for log in run.logs if log.error is not None]
    assert not errors, errors
    sent = [fid for log in run.logs for fid in log.frame_ids]
    assert len(sent) == len(set(sent)) == frames
    assert run.drained_s is not None, f"not drained within {PLAN.drain_s:.0f} s: {run.left}"
    assert run.frame_rows == len(sent), found
    assert run.batch_rows == sum(log.batches for log in run.logs), found
    assert set(run.states) <= {"accepted", "quarantined"}, found
    assert run.dead_letters == 0, found
    assert run.latency.posed > 0 and run.latency.tiles_unseen == 0, found
    assert not run.worker.errors, run.worker.errors
