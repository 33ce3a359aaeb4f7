"""Tests of `roadswarm.stack`: a real embedded Redis and real Celery worker processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from ingest.queues import SIM_QUEUE, create_celery_app
from roadswarm.errors import ServiceError
from roadswarm.stack import (
    EmbeddedRedis,
    WorkerProcess,
    process_gone,
    process_group_gone,
    wait_until_gone,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_TASKS = {"ROADSWARM_TASK_MODULES": "tests.integration.stack_tasks"}
RESULT_TIMEOUT_S = 60

pytestmark = pytest.mark.slow


def _worker(redis_server: EmbeddedRedis, workdir: Path, app_module: str) -> WorkerProcess:
    """A worker on the `sim` queue that can import this repository's test tasks."""
    return WorkerProcess(
        app_module,
        broker_url=redis_server.url,
        result_backend=redis_server.url,
        queues=[SIM_QUEUE],
        workdir=workdir,
        concurrency=2,
        extra_env=TEST_TASKS,
        python_path=[REPO_ROOT],
    )


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One embedded Redis shared by the tests of this module."""
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def worker(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One real worker process, loading the production worker app, on the `sim` queue."""
    with _worker(redis_server, tmp_path_factory.mktemp("worker"), "roadswarm.worker_app") as proc:
        yield proc


@pytest.fixture(scope="module")
def client(redis_server: EmbeddedRedis) -> Iterator[Celery]:
    """A Celery app in the test process that sends tasks and reads results."""
    app = create_celery_app(redis_server.url, redis_server.url)
    yield app
    app.close()


def test_broker_url_is_a_unix_socket_url(redis_server: EmbeddedRedis) -> None:
    """The embedded Redis is reached through `redis+socket://` and an existing socket."""
    assert redis_server.url == f"redis+socket://{redis_server.socket_path}"
    assert redis_server.socket_path.is_socket()


def test_task_result_comes_back(worker: WorkerProcess, client: Celery) -> None:
    """A task sent to the `sim` queue runs and its result is returned."""
    result = client.send_task("tests.add", args=(2, 3), queue=SIM_QUEUE)
    assert result.get(timeout=RESULT_TIMEOUT_S) == 5


def test_task_runs_in_another_process(
    worker: WorkerProcess, client: Celery, tmp_path: Path
) -> None:
    """The task's side effect comes from a worker process, not from the test process."""
    marker = tmp_path / "pid.txt"
    result = client.send_task("tests.write_pid", args=(str(marker),), queue=SIM_QUEUE)
    pid = result.get(timeout=RESULT_TIMEOUT_S)
    assert pid != os.getpid()
    assert marker.read_text() == str(pid)


def test_worker_and_its_pool_are_gone_after_exit(
    redis_server: EmbeddedRedis, client: Celery, tmp_path: Path
) -> None:
    """Leaving the worker context stops the main process and every pool child."""
    with _worker(redis_server, tmp_path, "roadswarm.worker_app") as worker:
        pid = worker.pid
        result = client.send_task("tests.add", args=(1, 1), queue=SIM_QUEUE)
        assert result.get(timeout=RESULT_TIMEOUT_S) == 2
    assert process_gone(pid)
    assert process_group_gone(pid)


def test_worker_that_cannot_start_reports_its_log(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    """A worker whose app cannot be imported raises `ServiceError` quoting its log."""
    worker = _worker(redis_server, tmp_path, "tests.integration.no_such_module")
    with pytest.raises(ServiceError, match="exited with status") as raised:
        worker.start()
    assert "no_such_module" in str(raised.value)


def test_redis_server_is_gone_after_exit(tmp_path: Path) -> None:
    """Leaving the Redis context shuts the server down and keeps its data file."""
    with EmbeddedRedis(tmp_path) as server:
        pid = server.pid
        assert not process_gone(pid)
    assert wait_until_gone(pid, timeout_s=1)
    assert (tmp_path / "redis.db").exists()
