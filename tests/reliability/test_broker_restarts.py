"""The broker crashes mid-run — SIGKILL, nothing saved — and comes back empty (Redis) or with
what it had written to disk (RabbitMQ), four times: while the privacy audit runs, just after an
audit queued matching and just after matching queued poses and layers (those two with the worker,
as a site-wide power cut), and while tiles are built. Workers and the beat reconnect; the
reconciler and the sweeps queue again what was lost, so every frame reaches a terminal state and
the tiles, reward bins and allocation are the fault-free run's.

Both brokers are private servers of this test (a redis-server, a RabbitMQ node), never the
shared ones on the default ports.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest.queues import AUDIT_TASK, MATCH_TASK, TILES_BUILD_TASK
from ingest.storage import LocalObjectStore
from tests.ingest_helpers import catalog_at
from tests.reliability.chaos import TaskWatch
from tests.reliability.outcome import Outcome, outcome
from tests.reliability.pipeline import (
    Drive,
    PipelineStack,
    seed,
    send_drive,
    wait_settled,
)
from tests.reliability.services import GroupProcess, RabbitNode, RedisServer, port_open
from tests.reliability.task_probe import FINISHED, STARTED


@dataclass(frozen=True)
class Crash:
    """When to crash the broker (a task's first start or end), and whether the worker goes too
    (a site-wide power cut: what it had taken from the queue is lost with the broker's copy)."""

    task: str
    event: str
    with_worker: bool


CRASHES = (
    Crash(AUDIT_TASK, STARTED, with_worker=False),  # frames mid-ingest
    Crash(AUDIT_TASK, FINISHED, with_worker=True),  # matching just queued
    Crash(MATCH_TASK, FINISHED, with_worker=True),  # poses and layers just queued
    Crash(TILES_BUILD_TASK, STARTED, with_worker=False),  # tiles mid-build
)
LONG = os.environ.get("ROADSWARM_RELIABILITY_LONG") == "1"
# A RabbitMQ node takes seconds to restart: the test command crashes it twice, the long run four
# times like Redis.
CRASHES_OF = {"redis": CRASHES, "rabbitmq": CRASHES if LONG else CRASHES[:2]}
pytestmark = pytest.mark.slow
DOWN_S = 1.0
STAGE_TIMEOUT_S = 120
SETTLE_S = 180


@contextmanager
def broker(kind: str, workdir: Path) -> Iterator[RedisServer | RabbitNode]:
    """A private broker of `kind`, started."""
    if kind == "rabbitmq" and not port_open(4369):
        pytest.skip("no epmd on 127.0.0.1:4369: RabbitMQ is not installed here")
    service = RedisServer(workdir) if kind == "redis" else RabbitNode(workdir)
    with service:
        yield service


def wait_for(watch: TaskWatch, crash: Crash) -> None:
    """Block until a run of the crash's task has started (or finished)."""
    deadline = time.monotonic() + STAGE_TIMEOUT_S
    while time.monotonic() < deadline:
        watch.poll()
        if crash.task in (watch.started_names if crash.event == STARTED else watch.finished_names):
            return
        time.sleep(0.005)
    msg = f"no {crash.task} task {crash.event} within {STAGE_TIMEOUT_S} s"
    raise AssertionError(msg)


def restart(service: GroupProcess, stack: PipelineStack, crash: Crash) -> float:
    """Crash the broker (and the worker), leave it down a moment, start it (and a new worker)
    again; the seconds the broker was unreachable."""
    if crash.with_worker:
        stack.kill_worker()
    down = time.monotonic()
    service.crash()
    time.sleep(DOWN_S)
    service.start()
    up = time.monotonic()
    if crash.with_worker:
        stack.start_worker()
    return up - down


@pytest.mark.parametrize(("kind", "database"), [("redis", "postgresql"), ("rabbitmq", "sqlite")])
def test_broker_crashes_mid_run_and_the_reconciler_finishes_the_work(
    kind: str, database: str, pipeline_drive: Drive, reference: Outcome, tmp_path: Path
) -> None:
    """Broker crashes, some with the worker; every frame still ends accepted or quarantined,
    once, and tiles, reward bins and the epoch's allocation equal the fault-free run's."""
    started = time.monotonic()
    store = LocalObjectStore(tmp_path / "store")
    outages = []
    with broker(kind, tmp_path / kind) as service, catalog_at(database, tmp_path) as catalog:
        seed(catalog, store, pipeline_drive)
        url = catalog.engine.url.render_as_string(hide_password=False)
        with PipelineStack(
            broker_url=service.url, database_url=url, store_dir=store.root, workdir=tmp_path
        ) as stack:
            send_drive(service.url, pipeline_drive)
            watch = TaskWatch(stack.probe_dir)
            for crash in CRASHES_OF[kind]:
                wait_for(watch, crash)
                outages.append(round(restart(service, stack, crash), 1))
            settle_s = wait_settled(catalog, SETTLE_S)
        result = outcome(catalog, store, pipeline_drive)
    figures = {
        "broker": kind,
        "catalog": database,
        "crashes": len(outages),
        "down_s": outages,
        "settled_after_last_crash_s": round(settle_s, 1),
        "run_s": round(time.monotonic() - started, 1),
        **result.figures(),
    }
    print("broker restarts:", json.dumps(figures))
    assert all(len(reasons) == 1 for reasons in result.quarantine.values())
    assert result.states == reference.states
    assert result.quarantine == reference.quarantine
    assert result.tiles == reference.tiles
    assert result.reward_bins == reference.reward_bins
    assert result.epoch_body == reference.epoch_body
