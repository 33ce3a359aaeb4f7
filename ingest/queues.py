"""The Celery application factory and the names of the queues work flows through.

One queue per stage lets operators scale each stage on its own (more `match` workers on more
hosts) and keeps a slow stage from starving the others.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from celery import Celery

from ingest.errors import QueueConfigError
from ingest.settings import QueueSettings

INGEST_QUEUE = "ingest"
AUDIT_QUEUE = "audit"
"""The privacy audit: heavy (detectors), so scaled apart from the cheap checks of `ingest`."""
MATCH_QUEUE = "match"
TILES_QUEUE = "tiles"
"""Frame poses and map tiles: blocks of dirty tiles built from frames, then the zooms below."""
REWARDS_QUEUE = "rewards"
SIM_QUEUE = "sim"
"""The simulator's rendering queue (virtual dashcam frames)."""
VALIDATE_TASK = "ingest.validate_frames"
AUDIT_TASK = "ingest.audit_frames"
RECONCILE_TASK = "ingest.reconcile"
MATCH_TASK = "match.sequences"
"""Registered by `mapbuilder.tasks`; ingest only names it (it must not import mapbuilder)."""
TILES_POSES_TASK = "tiles.poses"
TILES_BUILD_TASK = "tiles.build_block"
TILES_SWEEP_TASK = "tiles.sweep"
"""Registered by `mapbuilder.tile_tasks`."""
LAYERS_UPDATE_TASK = "layers.update"
"""Coverage and freshness tiles of matched sequences; registered by `roadswarm.layer_tasks`."""
WORKER_PROCESSES_ENV = "ROADSWARM_WORKER_PROCESSES"
"""How many pool processes (or threads) a worker runs, published by `roadswarm.worker_app` before
it forks them, so each process's model sessions take their share of the cores."""
LAYERS_REFRESH_TASK = "layers.refresh"
"""Freshness tiles whose captures aged into the next colour; run by the scheduler."""
REWARDS_BINS_TASK = "rewards.refresh_bins"
"""The per-bin capture summary epochs are closed from; registered by `rewards.tasks`."""

ALL_QUEUES = (INGEST_QUEUE, AUDIT_QUEUE, MATCH_QUEUE, TILES_QUEUE, REWARDS_QUEUE, SIM_QUEUE)

RESULT_EXPIRES_S = 24 * 3600
# Kombu looks for messages abandoned past the visibility timeout every `interval x throttle`
# seconds (100 s by default); a short timeout (tests) wants the check more often than that.
RESTORE_CHECKS_PER_TIMEOUT = 20
RESTORE_INTERVAL_MAX_S = 10


def create_celery_app(
    broker_url: str,
    result_backend: str | None = None,
    *,
    include: Sequence[str] = (),
    default_queue: str = INGEST_QUEUE,
    settings: QueueSettings | None = None,
) -> Celery:
    """Build the Celery application used by every worker and every producer of tasks.

    `include` names the task modules a worker imports at start; an empty or missing
    `result_backend` disables results; timings come from `settings` (default: the environment's).
    Raise `QueueConfigError` when `broker_url` is empty.
    """
    if not broker_url:
        msg = (
            "No Celery broker URL: set ROADSWARM_BROKER_URL (e.g. redis://localhost:6379/0) "
            "or start the embedded demo stack."
        )
        raise QueueConfigError(msg)
    app = Celery("roadswarm", broker=broker_url, backend=result_backend or None, include=[*include])
    app.conf.update(reliable_config(default_queue, settings or QueueSettings()))
    return app


def reliable_config(
    default_queue: str = INGEST_QUEUE, settings: QueueSettings | None = None
) -> dict[str, Any]:
    """Celery settings for work that must not be lost when a worker dies mid-task."""
    timing = settings or QueueSettings()
    limit = timing.task_time_limit_s
    return {
        # Acknowledge after the task ran, and give the message back if the worker process died,
        # so a crash means "run again" (tasks are idempotent), never "lost".
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # A task lost with the connection is redelivered anyway; cancelling it avoids two copies.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Tasks are long (rendering, stitching): reserving more would hold them from idle workers.
        "worker_prefetch_multiplier": 1,
        # JSON only: pickle from a broker would let anyone who can publish run code on workers.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_default_queue": default_queue,
        # Events let Flower (and anything else on the broker) follow every task's life.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "result_expires": RESULT_EXPIRES_S,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": _transport_options(timing.visibility_timeout_s),
        "task_time_limit": limit,
        # The soft limit raises SoftTimeLimitExceeded inside the task first, so it can clean up.
        "task_soft_time_limit": limit - max(1, min(60, limit // 10)),
        "timezone": "UTC",
        "enable_utc": True,
        # Run by the one worker started with `--beat`: re-queues what the broker lost, and
        # re-colours the freshness tiles whose captures aged.
        "beat_schedule": {
            "reconcile": _every(RECONCILE_TASK, INGEST_QUEUE, timing.reconcile_every_s),
            "layers-refresh": _every(
                LAYERS_REFRESH_TASK, TILES_QUEUE, timing.layers_refresh_every_s
            ),
            "rewards-bins": _every(REWARDS_BINS_TASK, REWARDS_QUEUE, timing.rewards_bins_every_s),
            "tiles-sweep": _every(TILES_SWEEP_TASK, TILES_QUEUE, timing.tiles_sweep_every_s),
        },
    }


def _every(task: str, queue: str, seconds: float) -> dict[str, Any]:
    """A beat entry; a run not started before the next one is due expires (never two queued)."""
    return {"task": task, "schedule": seconds, "options": {"queue": queue, "expires": seconds}}


def _transport_options(visibility_timeout_s: int) -> dict[str, Any]:
    """Redis' redelivery of unacknowledged messages (AMQP ignores these options)."""
    interval = max(
        1, min(RESTORE_INTERVAL_MAX_S, visibility_timeout_s // RESTORE_CHECKS_PER_TIMEOUT)
    )
    return {
        "visibility_timeout": visibility_timeout_s,
        "unacked_restore_interval": interval,
        "unacked_restore_throttle": 1,
    }


def pool_size(options: dict[str, Any] | None) -> int:
    """How many pool processes a worker started with these options forks (Celery's default,
    without `--concurrency`, is one per CPU)."""
    return int((options or {}).get("concurrency") or os.cpu_count() or 1)


def publish_pool_size(options: dict[str, Any] | None = None, **_: object) -> None:
    """Tell a worker's pool processes how many of them share the cores (Celery's `celeryd_init`:
    they are forked after it), so each model session takes its share of the threads."""
    os.environ.setdefault(WORKER_PROCESSES_ENV, str(pool_size(options)))
