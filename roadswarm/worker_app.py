"""The Celery application a worker loads: `celery -A roadswarm.worker_app worker`.

It reads `QueueSettings` (`ROADSWARM_BROKER_URL`, `ROADSWARM_RESULT_BACKEND`,
`ROADSWARM_TASK_MODULES`) when imported, so a worker is configured entirely by its environment.
Task modules should define their tasks with `celery.shared_task`, so that they can be imported
(and unit-tested) without this module and its settings.
"""

from __future__ import annotations

import logging

from celery.signals import after_setup_logger, after_setup_task_logger, celeryd_init

from ingest.queues import create_celery_app, publish_pool_size
from ingest.settings import QueueSettings
from mapbuilder.tile_tasks import share_decoded_frames
from roadswarm.logs import mask_handlers

TASK_MODULES: tuple[str, ...] = (
    "roadswarm.sim.tasks",
    "ingest.tasks",
    "mapbuilder.tasks",
    "mapbuilder.tile_tasks",
    "roadswarm.layer_tasks",
    "rewards.tasks",
)
"""Modules whose tasks a worker registers; a non-empty `ROADSWARM_TASK_MODULES` replaces them."""

_settings = QueueSettings()

# One Redis serves as both broker and result store unless told otherwise; an AMQP broker cannot
# store results, and the pipeline's tasks record theirs in the catalog anyway.
_results = _settings.result_backend or (
    _settings.broker_url if _settings.broker_url.startswith("redis") else None
)

app = create_celery_app(
    _settings.broker_url, _results, include=_settings.task_modules or TASK_MODULES
)


def _mask_worker_logs(logger: logging.Logger, **_: object) -> None:
    """A worker replaces the root logger's handlers with its own (and gives tasks theirs): those
    must mask secrets too, in the main process and in the pool processes it forks."""
    mask_handlers(logger)


celeryd_init.connect(publish_pool_size, weak=False)
celeryd_init.connect(share_decoded_frames, weak=False)
after_setup_logger.connect(_mask_worker_logs, weak=False)
after_setup_task_logger.connect(_mask_worker_logs, weak=False)
