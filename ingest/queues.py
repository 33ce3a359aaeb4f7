"""The Celery application factory and the names of the queues work flows through.

One queue per stage lets operators scale each stage on its own (more `match` workers on more
hosts) and keeps a slow stage from starving the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery

from ingest.errors import QueueConfigError

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
LAYERS_REFRESH_TASK = "layers.refresh"
"""Freshness tiles whose captures aged into the next colour; run by the scheduler."""
REWARDS_BINS_TASK = "rewards.refresh_bins"
"""The per-bin capture summary epochs are closed from; registered by `rewards.tasks`."""

ALL_QUEUES = (INGEST_QUEUE, AUDIT_QUEUE, MATCH_QUEUE, TILES_QUEUE, REWARDS_QUEUE, SIM_QUEUE)

# Redis redelivers a message not acknowledged within the visibility timeout. With late acks a task
# that runs longer would be delivered again while still running, so the hard time limit stays
# well below it.
VISIBILITY_TIMEOUT_S = 3600
TASK_TIME_LIMIT_S = 1800
# The soft limit raises SoftTimeLimitExceeded inside the task first, so it can clean up.
TASK_SOFT_TIME_LIMIT_S = 1740
RESULT_EXPIRES_S = 24 * 3600
RECONCILE_EVERY_S = 60.0
TILES_SWEEP_EVERY_S = 300.0
LAYERS_REFRESH_EVERY_S = 3600.0
REWARDS_BINS_EVERY_S = 300.0


def create_celery_app(
    broker_url: str,
    result_backend: str | None = None,
    *,
    include: Sequence[str] = (),
    default_queue: str = INGEST_QUEUE,
) -> Celery:
    """Build the Celery application used by every worker and every producer of tasks.

    `include` names the task modules a worker imports at start; an empty or missing
    `result_backend` disables results. Raise `QueueConfigError` when `broker_url` is empty.
    """
    if not broker_url:
        msg = (
            "No Celery broker URL: set ROADSWARM_BROKER_URL (e.g. redis://localhost:6379/0) "
            "or start the embedded demo stack."
        )
        raise QueueConfigError(msg)
    app = Celery("roadswarm", broker=broker_url, backend=result_backend or None, include=[*include])
    app.conf.update(reliable_config(default_queue))
    return app


def reliable_config(default_queue: str = INGEST_QUEUE) -> dict[str, Any]:
    """Celery settings for work that must not be lost when a worker dies mid-task."""
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
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_S},
        "task_time_limit": TASK_TIME_LIMIT_S,
        "task_soft_time_limit": TASK_SOFT_TIME_LIMIT_S,
        "timezone": "UTC",
        "enable_utc": True,
        # Run by the one worker started with `--beat`: re-queues what the broker lost, and
        # re-colours the freshness tiles whose captures aged.
        "beat_schedule": {
            "reconcile": {
                "task": RECONCILE_TASK,
                "schedule": RECONCILE_EVERY_S,
                "options": {"queue": INGEST_QUEUE, "expires": RECONCILE_EVERY_S},
            },
            "layers-refresh": {
                "task": LAYERS_REFRESH_TASK,
                "schedule": LAYERS_REFRESH_EVERY_S,
                "options": {"queue": TILES_QUEUE, "expires": LAYERS_REFRESH_EVERY_S},
            },
            "rewards-bins": {
                "task": REWARDS_BINS_TASK,
                "schedule": REWARDS_BINS_EVERY_S,
                "options": {"queue": REWARDS_QUEUE, "expires": REWARDS_BINS_EVERY_S},
            },
            "tiles-sweep": {
                "task": TILES_SWEEP_TASK,
                "schedule": TILES_SWEEP_EVERY_S,
                "options": {"queue": TILES_QUEUE, "expires": TILES_SWEEP_EVERY_S},
            },
        },
    }
