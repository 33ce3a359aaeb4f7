"""Celery tasks of the ingest pipeline: thin wrappers that call the stage functions.

Each worker process builds its catalog, store and scanner once, after the fork, from its
environment (`IngestSettings`, `ValidationSettings`). Transient failures (store or database
unreachable) are retried with exponential backoff and jitter; anything else leaves the frames in
their state with the error recorded, for the reconciler to retry and, in the end, dead-letter.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import urllib3.exceptions
from celery import current_app, shared_task
from minio.error import S3Error
from sqlalchemy.exc import OperationalError

from ingest.audit import Scanner, audit_frames
from ingest.queues import (
    AUDIT_QUEUE,
    AUDIT_TASK,
    INGEST_QUEUE,
    MATCH_QUEUE,
    MATCH_TASK,
    RECONCILE_TASK,
    VALIDATE_TASK,
    WORKER_PROCESSES_ENV,
)
from ingest.reconcile import reconcile
from ingest.services import open_catalog, open_store
from ingest.settings import IngestSettings, ValidationSettings
from ingest.states import record_error, sequence_keys
from ingest.validate import IngestContext, StageResult, validate_frames

log = logging.getLogger(__name__)
TRANSIENT = (OSError, OperationalError, urllib3.exceptions.HTTPError, S3Error)
RETRY: dict[str, Any] = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 6,
    "acks_late": True,
}
_contexts: dict[int, IngestContext] = {}
_scanners: dict[int, Scanner] = {}


def worker_context() -> IngestContext:
    """This process's catalog and store (a forked child must not reuse its parent's sockets)."""
    pid = os.getpid()
    if pid not in _contexts:
        settings = IngestSettings()
        _contexts[pid] = IngestContext(
            open_catalog(settings), open_store(settings), ValidationSettings()
        )
    return _contexts[pid]


def worker_scanner() -> Scanner:
    """This process's privacy scanner, loaded on first use (it holds two models)."""
    pid = os.getpid()
    if pid not in _scanners:
        from models.scan import PrivacyScanner
        from models.settings import DetectionSettings, ModelSettings

        # The worker's other pool processes scan frames on the same cores.
        processes = int(os.environ.get(WORKER_PROCESSES_ENV, "1"))
        settings = DetectionSettings().sharing_cores(processes)
        _scanners[pid] = PrivacyScanner(
            *PrivacyScanner.load_detectors(settings, ModelSettings()), settings
        )
    return _scanners[pid]


def chunks(frame_ids: Sequence[str], size: int) -> list[list[str]]:
    """Frame ids in task-sized groups."""
    return [list(frame_ids[i : i + size]) for i in range(0, len(frame_ids), size)]


def _run_stage(frame_ids: list[str], stage: Callable[[IngestContext], StageResult]) -> StageResult:
    ctx = worker_context()
    try:
        return stage(ctx)
    except Exception as exc:
        log.warning("stage failed on %d frames: %s", len(frame_ids), exc)
        try:
            with ctx.catalog.session() as session:
                record_error(session, frame_ids, f"{type(exc).__name__}: {exc}")
        except OperationalError:
            log.warning("could not record the error in the catalog either")
        raise


def _summary(result: StageResult) -> dict[str, Any]:
    return {"advanced": len(result.advanced), "quarantined": result.quarantined}


def validate_frames_job(frame_ids: list[str]) -> dict[str, Any]:
    """Validate received frames, then queue the privacy audit of those that passed."""
    result = _run_stage(frame_ids, lambda ctx: validate_frames(ctx, frame_ids))
    if result.advanced:
        current_app.send_task(AUDIT_TASK, args=[result.advanced], queue=AUDIT_QUEUE)
    return _summary(result)


def audit_frames_job(frame_ids: list[str]) -> dict[str, Any]:
    """Audit validated frames for unblurred faces and plates; queue the accepted ones' matching."""
    result = _run_stage(frame_ids, lambda ctx: audit_frames(ctx, worker_scanner(), frame_ids))
    if result.advanced:
        with worker_context().catalog.session() as session:
            keys = [list(key) for key in sequence_keys(session, result.advanced)]
        current_app.send_task(MATCH_TASK, args=[keys], queue=MATCH_QUEUE)
    return _summary(result)


def reconcile_job() -> dict[str, Any]:
    """Re-queue frames stuck in a state, dead-letter those out of attempts."""
    result = reconcile(worker_context())
    send_requeued(current_app, result.requeued)
    return {"requeued": {k: len(v) for k, v in result.requeued.items()}, "dead": len(result.dead)}


validate_frames_task = shared_task(name=VALIDATE_TASK, **RETRY)(validate_frames_job)
audit_frames_task = shared_task(name=AUDIT_TASK, **RETRY)(audit_frames_job)
reconcile_task = shared_task(name=RECONCILE_TASK, acks_late=True)(reconcile_job)


def send_requeued(app: Any, requeued: dict[str, list[str]]) -> None:
    """Queue the stage task of every re-queued frame, in task-sized groups."""
    routes = {"validate": (VALIDATE_TASK, INGEST_QUEUE), "audit": (AUDIT_TASK, AUDIT_QUEUE)}
    for stage, frame_ids in requeued.items():
        name, queue = routes[stage]
        for group in chunks(frame_ids, 50):
            app.send_task(name, args=[group], queue=queue)
