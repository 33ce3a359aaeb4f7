"""What operators and drivers are shown: frames by state, quarantine, throughput, queues."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import func, select

from ingest.catalog import Batch, DeadLetter, Frame, FrameState, Quarantine, TaskRun
from ingest.db import Catalog
from ingest.devices import DeviceInfo
from ingest.queues import ALL_QUEUES

log = logging.getLogger(__name__)
PING_TIMEOUT_S = 1.0


def frames_by_state(catalog: Catalog, device_id: str | None = None) -> dict[str, int]:
    """How many frames are in each state (every state listed, zeros included)."""
    query = select(Frame.state, func.count()).group_by(Frame.state)
    if device_id is not None:
        query = query.where(Frame.device_id == device_id)
    with catalog.session() as session:
        counts = {state.value: count for state, count in session.execute(query)}
    return {state.value: counts.get(state.value, 0) for state in FrameState}


def quarantine_counts(catalog: Catalog, device_id: str | None = None) -> dict[str, int]:
    """Unreleased quarantine entries by reason."""
    query = (
        select(Quarantine.reason, func.count())
        .where(Quarantine.released_at.is_(None))
        .group_by(Quarantine.reason)
    )
    if device_id is not None:
        query = query.where(Quarantine.device_id == device_id)
    with catalog.session() as session:
        return dict(sorted(session.execute(query)))


def device_summary(catalog: Catalog, device: DeviceInfo) -> dict[str, Any]:
    """A device's registration, committed batches and what became of its frames."""
    with catalog.session() as session:
        batches = session.scalar(
            select(func.count()).select_from(Batch).where(Batch.device_id == device.device_id)
        )
    return {
        "device_id": device.device_id,
        "registered_at": device.registered_at.isoformat(),
        "last_counter": device.last_counter,
        "batches": batches,
        "frames": frames_by_state(catalog, device.device_id),
        "quarantined_by_reason": quarantine_counts(catalog, device.device_id),
    }


def throughput(catalog: Catalog, now: datetime, minutes: int) -> dict[str, dict[str, float | None]]:
    """Frames per second and mean seconds per frame of each stage over the last minutes."""
    since = now - timedelta(minutes=minutes)
    query = (
        select(TaskRun.stage, func.sum(TaskRun.frames), func.sum(TaskRun.seconds), func.count())
        .where(TaskRun.finished_at >= since)
        .group_by(TaskRun.stage)
    )
    with catalog.session() as session:
        rows = session.execute(query).all()
    return {
        stage: {
            "frames": int(frames or 0),
            "tasks": int(tasks),
            "frames_per_s": round(float(frames or 0) / (minutes * 60), 3),
            "s_per_frame": round(float(seconds or 0) / frames, 4) if frames else None,
        }
        for stage, frames, seconds, tasks in rows
    }


def oldest_pending(catalog: Catalog, now: datetime) -> dict[str, Any] | None:
    """The frame that has waited longest for the pipeline, and for how long."""
    with catalog.session() as session:
        frame = session.scalars(
            select(Frame)
            .where(Frame.state.in_((FrameState.RECEIVED, FrameState.VALIDATED)))
            .order_by(Frame.received_at)
            .limit(1)
        ).first()
    if frame is None:
        return None
    return {
        "frame_id": frame.frame_id,
        "state": frame.state.value,
        "waiting_s": round((now - frame.received_at).total_seconds(), 1),
        "attempts": frame.attempts,
        "last_error": frame.last_error,
    }


def dead_letter_count(catalog: Catalog) -> int:
    """Frames the pipeline gave up on."""
    with catalog.session() as session:
        return int(session.scalar(select(func.count()).select_from(DeadLetter)) or 0)


def queue_depths(app: Celery) -> dict[str, int | None]:
    """Messages waiting in each queue (None when the broker cannot say)."""
    depths: dict[str, int | None] = {}
    try:
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            for queue in ALL_QUEUES:
                try:
                    depths[queue] = int(
                        channel.queue_declare(queue=queue, passive=True).message_count
                    )
                except Exception:  # a queue never declared holds nothing (AMQP says so by error)
                    depths[queue] = 0
                    channel = connection.channel()
    except (BrokerError, OSError) as exc:
        log.warning("cannot read queue depths: %s", exc)
        return dict.fromkeys(ALL_QUEUES)
    return depths


def workers(app: Celery) -> dict[str, list[str]]:
    """The workers that answer, with the queues each consumes."""
    try:
        replies = app.control.inspect(timeout=PING_TIMEOUT_S).active_queues() or {}
    except (BrokerError, OSError) as exc:
        log.warning("cannot reach workers: %s", exc)
        return {}
    return {name: sorted(q["name"] for q in queues) for name, queues in sorted(replies.items())}


def status(catalog: Catalog, app: Celery | None, now: datetime, minutes: int = 5) -> dict[str, Any]:
    """Everything `roadswarm ops status` shows."""
    return {
        "at": now.isoformat(),
        "frames": frames_by_state(catalog),
        "quarantined_by_reason": quarantine_counts(catalog),
        "dead_letters": dead_letter_count(catalog),
        "oldest_pending": oldest_pending(catalog, now),
        "throughput_window_min": minutes,
        "throughput": throughput(catalog, now, minutes),
        "queues": queue_depths(app) if app is not None else None,
        "workers": workers(app) if app is not None else None,
    }
