"""`roadswarm ingest ...`: the ingest API and the catalog's maintenance."""

from __future__ import annotations

import click

from ingest.catalog import utcnow
from ingest.devices import list_devices, revoke_device
from ingest.queues import create_celery_app
from ingest.reconcile import reconcile
from ingest.services import open_catalog, open_store
from ingest.settings import IngestSettings, QueueSettings, ValidationSettings
from ingest.tasks import send_requeued
from ingest.validate import IngestContext
from roadswarm.logs import server_log_config
from roadswarm.output import emit, json_option


@click.group("ingest")
def ingest_group() -> None:
    """The ingest API, the catalog and its devices (settings: ROADSWARM_DATABASE_URL, ...)."""


@ingest_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8100, show_default=True)
@click.option(
    "--public-url",
    default=None,
    help="How devices reach this API (default http://HOST:PORT); embedded upload URLs use it.",
)
def serve_command(host: str, port: int, public_url: str | None) -> None:
    """Serve the ingest API until stopped (run several behind a proxy to scale)."""
    import uvicorn

    from roadswarm.ingest_app import full_app_from_settings

    app = full_app_from_settings(public_url or f"http://{host}:{port}")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        log_config=server_log_config(),
        proxy_headers=True,
    )


@ingest_group.command("migrate")
@json_option
def migrate_command(as_json: bool) -> None:
    """Create the catalog's tables or bring them to the newest schema."""
    settings = IngestSettings()
    open_catalog(settings, migrate_schema=True).dispose()
    emit({"migrated": True}, as_json=as_json, text="catalog schema is up to date")


@ingest_group.command("reconcile")
@json_option
def reconcile_command(as_json: bool) -> None:
    """Re-queue frames stuck in a state; dead-letter those out of attempts."""
    settings = IngestSettings()
    ctx = IngestContext(open_catalog(settings), open_store(settings), ValidationSettings())
    result = reconcile(ctx)
    broker = QueueSettings().broker_url
    if broker and result.requeued:
        send_requeued(create_celery_app(broker), result.requeued)
    summary = {"requeued": {k: len(v) for k, v in result.requeued.items()}, "dead": result.dead}
    text = f"re-queued {summary['requeued'] or 'nothing'}; dead-lettered {len(result.dead)}"
    emit(summary, as_json=as_json, text=text)


@ingest_group.group("devices")
def devices_group() -> None:
    """Registered devices."""


@devices_group.command("list")
@json_option
def devices_list_command(as_json: bool) -> None:
    """Every registered device, oldest first."""
    devices = list_devices(open_catalog(IngestSettings()))
    lines = [
        f"{d.device_id}  registered {d.registered_at:%Y-%m-%d %H:%M}  counter {d.last_counter}"
        + ("  REVOKED" if d.revoked_at else "")
        for d in devices
    ]
    emit(devices, as_json=as_json, text="\n".join(lines) or "no devices registered")


@devices_group.command("revoke")
@click.argument("device_id")
@json_option
def devices_revoke_command(device_id: str, as_json: bool) -> None:
    """Stop a device from uploading; what it sent before stays as it is."""
    info = revoke_device(open_catalog(IngestSettings()), device_id, now=utcnow())
    emit(info, as_json=as_json, text=f"device {info.device_id} revoked")
