"""`roadswarm ops ...`: what operators watch and act on."""

from __future__ import annotations

import json
from typing import Any

import click

from ingest.catalog import utcnow
from ingest.db import Catalog
from ingest.ops import status
from ingest.quarantine import list_quarantine, release, show_quarantine
from ingest.queues import AUDIT_QUEUE, AUDIT_TASK, create_celery_app
from ingest.services import open_catalog
from ingest.settings import IngestSettings, QueueSettings
from roadswarm.output import emit, json_option


def _catalog() -> Catalog:
    return open_catalog(IngestSettings())


@click.group("ops")
def ops_group() -> None:
    """Pipeline status and the quarantine."""


@ops_group.command("status")
@click.option("--minutes", type=click.IntRange(1, 1440), default=5, show_default=True)
@json_option
def status_command(minutes: int, as_json: bool) -> None:
    """Queue depths, workers, throughput, the oldest unprocessed frame, quarantine counts."""
    broker = QueueSettings().broker_url
    app = create_celery_app(broker) if broker else None
    result = status(_catalog(), app, utcnow(), minutes)
    emit(result, as_json=as_json, text=_status_text(result))


def _status_text(result: dict[str, Any]) -> str:
    oldest = result["oldest_pending"]
    lines = [
        f"frames: {_pairs(result['frames'])}",
        f"quarantined: {_pairs(result['quarantined_by_reason']) or 'none'}",
        f"dead letters: {result['dead_letters']}",
        f"oldest pending: {oldest['frame_id'][:12]} {oldest['state']} for {oldest['waiting_s']} s"
        if oldest
        else "oldest pending: none",
        f"last {result['throughput_window_min']} min: "
        + (
            ", ".join(f"{s} {v['frames_per_s']} frames/s" for s, v in result["throughput"].items())
            or "idle"
        ),
        f"queues: {_pairs(result['queues']) if result['queues'] is not None else 'no broker configured'}",
        f"workers: {', '.join(result['workers']) if result['workers'] else 'none answering'}",
    ]
    return "\n".join(lines)


def _pairs(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in mapping.items())


@ops_group.group("quarantine")
def quarantine_group() -> None:
    """Frames held back, and why."""


@quarantine_group.command("list")
@click.option("--reason", default=None, help="Only this reason (e.g. unblurred_face).")
@click.option("--device", "device_id", default=None, help="Only this device.")
@click.option("--all", "include_released", is_flag=True, help="Include released entries.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@json_option
def list_command(
    reason: str | None, device_id: str | None, include_released: bool, limit: int, as_json: bool
) -> None:
    """Quarantine entries, newest first."""
    entries = list_quarantine(
        _catalog(),
        reason=reason,
        device_id=device_id,
        include_released=include_released,
        limit=limit,
    )
    lines = [
        f"{e.id:>6}  {e.created_at:%Y-%m-%d %H:%M}  {e.reason:<28} {e.frame_id[:12]}  {e.detail}"
        for e in entries
    ]
    emit(
        [e.to_json() for e in entries],
        as_json=as_json,
        text="\n".join(lines) or "quarantine is empty",
    )


@quarantine_group.command("show")
@click.argument("entry_id", type=int)
@json_option
def show_command(entry_id: int, as_json: bool) -> None:
    """One entry with its frame's record."""
    shown = show_quarantine(_catalog(), entry_id)
    emit(shown, as_json=as_json, text=json.dumps(shown, indent=2))


@quarantine_group.command("release")
@click.argument("entry_id", type=int)
@click.option("--by", required=True, help="Who released it (kept with the entry).")
@json_option
def release_command(entry_id: int, by: str, as_json: bool) -> None:
    """Release a false alarm: the frame goes on to the privacy audit (or is accepted after it)."""
    result = release(_catalog(), entry_id, by=by, now=utcnow())
    broker = QueueSettings().broker_url
    if result["state"] == "validated" and broker:
        create_celery_app(broker).send_task(
            AUDIT_TASK, args=[[result["frame_id"]]], queue=AUDIT_QUEUE
        )
    emit(result, as_json=as_json, text=f"entry {entry_id} released: frame now {result['state']}")
