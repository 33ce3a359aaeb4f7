"""The Celery application a worker loads: `celery -A roadswarm.worker_app worker`.

It reads `QueueSettings` (`ROADSWARM_BROKER_URL`, `ROADSWARM_RESULT_BACKEND`,
`ROADSWARM_TASK_MODULES`) when imported, so a worker is configured entirely by its environment.
Task modules should define their tasks with `celery.shared_task`, so that they can be imported
(and unit-tested) without this module and its settings.
"""

from __future__ import annotations

from ingest.queues import create_celery_app
from ingest.settings import QueueSettings

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
