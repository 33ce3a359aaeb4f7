"""What the API's handlers work with, assembled once per process."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from celery import Celery
from kombu.exceptions import OperationalError as BrokerError

from ingest.catalog import utcnow
from ingest.db import Catalog
from ingest.queues import INGEST_QUEUE, VALIDATE_TASK
from ingest.settings import IngestSettings
from ingest.storage import ObjectStore
from ingest.uploads import UploadSigner

log = logging.getLogger(__name__)
TASK_FRAMES = 50
# The API must answer even when the broker is down: the reconciler re-queues what was not sent.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5}


@dataclass
class ApiServices:
    """The catalog, the store, the upload signer and the broker the API talks to."""

    catalog: Catalog
    store: ObjectStore
    signer: UploadSigner
    settings: IngestSettings
    celery: Celery | None
    clock: Callable[[], datetime] = field(default=utcnow)

    def queue_validation(self, frame_ids: Sequence[str]) -> int:
        """Send validation tasks; return how many frames were queued (0 if the broker is down)."""
        if self.celery is None or not frame_ids:
            return 0
        try:
            for start in range(0, len(frame_ids), TASK_FRAMES):
                group = list(frame_ids[start : start + TASK_FRAMES])
                self.celery.send_task(
                    VALIDATE_TASK, args=[group], queue=INGEST_QUEUE, retry_policy=PUBLISH_RETRY
                )
        except (BrokerError, OSError) as exc:
            log.warning("broker unreachable, the reconciler will queue the frames: %s", exc)
            return 0
        return len(frame_ids)
