"""Flower, the operators' Celery dashboard, against the same broker as a real pipeline worker: it
sees the worker and its tasks, and its Prometheus endpoint counts them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ingest.db import Catalog
from ingest.queues import INGEST_QUEUE, VALIDATE_TASK, create_celery_app
from roadswarm.api_server import free_port
from roadswarm.stack import ingest_worker
from tests.ingest_helpers import require_redis

pytestmark = pytest.mark.slow
BROKER = "redis://127.0.0.1:6379/9"
AUTH = ("ops", "flower-test-password")  # Flower's API refuses to run unauthenticated
WAIT_S = 60


def _until(check: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    pytest.fail(f"Flower did not {what} within {WAIT_S} s")


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5, auth=AUTH)
    except httpx.TransportError:
        return None


def test_flower_sees_workers_and_tasks(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    """A task sent to a real worker shows in Flower's API and in its metrics."""
    require_redis()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "celery",
        f"--broker={BROKER}",
        "flower",
        f"--port={port}",
        "--address=127.0.0.1",
        f"--basic_auth={AUTH[0]}:{AUTH[1]}",
    ]
    log = (tmp_path / "flower.log").open("wb")
    flower = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _until(lambda: (r := _get(f"{url}/healthcheck")) is not None and r.text == "OK", "start")
        with ingest_worker(
            broker_url=BROKER,
            database_url=str(sqlite_catalog.engine.url),
            store_dir=tmp_path / "store",
            workdir=tmp_path / "worker",
            queues=[INGEST_QUEUE],
            concurrency=1,
        ) as worker:
            app = create_celery_app(BROKER)
            app.send_task(VALIDATE_TASK, args=[["0" * 64]], queue=INGEST_QUEUE)
            app.close()

            def worker_listed() -> bool:
                answer = _get(f"{url}/api/workers?refresh=1")
                return answer is not None and worker.nodename in answer.json()

            def task_counted() -> bool:
                answer = _get(f"{url}/metrics")
                return (
                    answer is not None
                    and f'task="{VALIDATE_TASK}"' in answer.text
                    and "task-succeeded" in answer.text
                )

            _until(worker_listed, "list the worker")
            _until(task_counted, "count the task")
    finally:
        flower.terminate()
        flower.wait(timeout=30)
        log.close()
