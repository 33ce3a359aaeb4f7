"""The Celery settings every worker gets: work survives a dead worker, and the recovery timings
(visibility timeout, time limits, the scheduler's intervals) come from the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ingest.queues import RECONCILE_TASK, TILES_SWEEP_TASK, reliable_config
from ingest.settings import QueueSettings


def test_a_dead_worker_gives_its_task_back() -> None:
    """Late acks, requeue on a lost worker, one message reserved, the limit below the timeout."""
    config = reliable_config()
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    timeout = config["broker_transport_options"]["visibility_timeout"]
    assert config["task_soft_time_limit"] < config["task_time_limit"] < timeout


def test_timings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short timings (as the reliability suite sets them) reach the schedule, the limits and
    Redis' check for abandoned messages."""
    monkeypatch.setenv("ROADSWARM_VISIBILITY_TIMEOUT_S", "40")
    monkeypatch.setenv("ROADSWARM_TASK_TIME_LIMIT_S", "30")
    monkeypatch.setenv("ROADSWARM_RECONCILE_EVERY_S", "2")
    monkeypatch.setenv("ROADSWARM_TILES_SWEEP_EVERY_S", "3")
    config = reliable_config()
    schedule = config["beat_schedule"]
    assert (schedule["reconcile"]["task"], schedule["reconcile"]["schedule"]) == (RECONCILE_TASK, 2)
    assert (schedule["tiles-sweep"]["task"], schedule["tiles-sweep"]["schedule"]) == (
        TILES_SWEEP_TASK,
        3,
    )
    assert config["task_time_limit"] == 30 and 0 < config["task_soft_time_limit"] < 30
    options = config["broker_transport_options"]
    assert options["visibility_timeout"] == 40
    assert options["unacked_restore_interval"] * options["unacked_restore_throttle"] <= 40 / 10


def test_a_time_limit_at_or_above_the_visibility_timeout_is_refused() -> None:
    """Redis would hand a task still running to a second worker: the error names both settings."""
    with pytest.raises(ValidationError, match=r"ROADSWARM_TASK_TIME_LIMIT_S.*VISIBILITY_TIMEOUT"):
        QueueSettings(visibility_timeout_s=60, task_time_limit_s=60)
