"""`roadswarm worker`: a real worker started by the CLI runs the simulator's task from a real broker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery

from ingest.queues import SIM_QUEUE, create_celery_app
from ingest.storage import LocalObjectStore
from roadswarm.errors import UserInputError
from roadswarm.sim.tasks import drive_prefix
from roadswarm.sim.world import World
from roadswarm.stack import EmbeddedRedis
from roadswarm.worker_cli import parse_queues

REPO = Path(__file__).resolve().parents[2]


def test_queue_names_are_checked() -> None:
    """Known queues pass in order; an unknown or empty list is a user error naming the choices."""
    assert parse_queues("sim, ingest") == ["sim", "ingest"]
    with pytest.raises(UserInputError, match="choose from ingest"):
        parse_queues("sim,stitch")
    with pytest.raises(UserInputError, match="none given"):
        parse_queues(" , ")


def test_worker_command_runs_a_drive_task(tmp_path: Path, grid_world: World) -> None:
    """A drive sent to the `sim` queue is rendered by the CLI's worker and lands in the store."""
    with EmbeddedRedis(tmp_path / "redis") as redis_server:
        command = [
            *(sys.executable, "-m", "roadswarm", "worker", "--queues", SIM_QUEUE),
            *("--concurrency", "1", "--broker", redis_server.url, "--name", "test-cli"),
        ]
        log_path = tmp_path / "worker.log"
        with (
            log_path.open("wb") as log,
            subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log) as worker,
        ):
            try:
                app = create_celery_app(redis_server.url, redis_server.url)
                wait_for_ping(app, worker, log_path)
                options = {
                    "minutes": 0.05,
                    "seed": 2,
                    "width_px": 160,
                    "height_px": 90,
                    "device": "cli-test",
                }
                result = app.send_task(
                    "sim.drive",
                    args=[str(grid_world.root), str(tmp_path / "store"), options],
                    queue=SIM_QUEUE,
                ).get(timeout=300)
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
    assert result["frames"] == int(0.05 * 60 * 30)
    store = LocalObjectStore(tmp_path / "store")
    keys = {o.key for o in store.list(drive_prefix("cli-test", 2))}
    assert keys == set(result["objects"].values())
    assert {k.rsplit("/", 1)[1] for k in keys} >= {
        "video.mp4",
        "truth.json",
        "track.gpx",
        "track.nmea",
    }


def wait_for_ping(app: Celery, worker: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"worker exited: {log_path.read_text()[-2000:]}")
        if app.control.ping(timeout=1.0):
            return
    pytest.fail(f"worker never answered: {log_path.read_text()[-2000:]}")
