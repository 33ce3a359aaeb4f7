"""Workers SIGKILLed mid-task on every pipeline queue, again and again, while a drive goes through
validation, the privacy audit, matching, tiles, layers and reward bins: every frame still ends in
exactly one terminal state, the tiles are byte-identical to a fault-free run, and the reward
summary and allocation are the fault-free run's (nothing counted twice).

Most kills hit the pool process running the task (the worker's main process sees it die and gives
the message back); every sixth takes the whole worker, main process and pool, as a host crash
would, and a new worker is started: the message then comes back after the visibility timeout,
the frames through the reconciler, the tile blocks through the sweep.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ingest.db import Catalog
from ingest.queues import (
    AUDIT_TASK,
    LAYERS_UPDATE_TASK,
    MATCH_TASK,
    RECONCILE_TASK,
    REWARDS_BINS_TASK,
    TILES_BUILD_TASK,
    TILES_POSES_TASK,
    TILES_SWEEP_TASK,
    VALIDATE_TASK,
)
from ingest.storage import LocalObjectStore
from tests.ingest_helpers import postgres_database
from tests.reliability.chaos import Killer, KillPlan, TaskWatch
from tests.reliability.outcome import Outcome, outcome
from tests.reliability.pipeline import (
    PIPELINE_QUEUES,
    Drive,
    PipelineStack,
    outstanding,
    seed,
    send_drive,
    wait_settled,
)
from tests.reliability.services import RedisServer

# ROADSWARM_RELIABILITY_LONG=1 runs the whole scenario four times, each with its own kill times.
ROUNDS = 4 if os.environ.get("ROADSWARM_RELIABILITY_LONG") == "1" else 1
QUOTA = {
    VALIDATE_TASK: 2,
    RECONCILE_TASK: 2,
    AUDIT_TASK: 2,
    MATCH_TASK: 3,
    TILES_POSES_TASK: 3,
    TILES_BUILD_TASK: 5,
    LAYERS_UPDATE_TASK: 3,
    TILES_SWEEP_TASK: 1,
    REWARDS_BINS_TASK: 3,
}
"""Kills planned per task (24): the pipeline's few runs of each task set what can be reached."""
MIN_KILLS = 20
KILLING_S = 150
SETTLE_S = 120
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_workers_killed_mid_task_lose_and_duplicate_nothing(
    round_: int, pipeline_drive: Drive, reference: Outcome, tmp_path: Path
) -> None:
    """Kills on every queue; then every frame is accepted or quarantined once, and tiles, reward
    bins and the epoch's allocation equal the fault-free run's."""
    started = time.monotonic()
    store = LocalObjectStore(tmp_path / "store")
    with (
        postgres_database() as url,
        RedisServer(tmp_path / "redis") as redis,
    ):
        catalog = Catalog.connect(url)
        try:
            seed(catalog, store, pipeline_drive)
            with PipelineStack(
                broker_url=redis.url, database_url=url, store_dir=store.root, workdir=tmp_path
            ) as stack:
                send_drive(redis.url, pipeline_drive)
                plan = KillPlan(QUOTA, seed=10 + round_)
                killer = Killer(TaskWatch(stack.probe_dir), plan, stack)
                killing = time.monotonic()
                killer.run(killing + KILLING_S, finished=lambda: not outstanding(catalog))
                killing_s = time.monotonic() - killing
                settle_s = wait_settled(catalog, SETTLE_S)
                workers = stack.workers_started
            result = outcome(catalog, store, pipeline_drive)
        finally:
            catalog.dispose()
    figures = {
        "round": round_,
        **killer.summary(),
        "workers_started": workers,
        "killing_s": round(killing_s, 1),
        "settled_after_kills_s": round(settle_s, 1),
        "run_s": round(time.monotonic() - started, 1),
        **result.figures(),
    }
    print("worker kills:", json.dumps(figures))
    hits = killer.hits()
    assert len(killer.kills) >= MIN_KILLS, figures
    assert {k.run.queue for k in hits} == set(PIPELINE_QUEUES), figures
    assert len(hits) >= 0.75 * len(killer.kills), figures
    assert all(len(reasons) == 1 for reasons in result.quarantine.values())
    assert set(result.quarantine) == {f for f, s in result.states.items() if s == "quarantined"}
    assert result.states == reference.states
    assert result.quarantine == reference.quarantine
    assert result.tiles == reference.tiles
    assert result.reward_bins == reference.reward_bins
    assert result.epoch_body == reference.epoch_body
