"""`roadswarm serve` (the map consumer API and viewer) and `roadswarm api keys ...` (its keys)."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import asdict
from typing import Any

import click

from ingest.services import open_catalog
from ingest.settings import IngestSettings
from mapbuilder.serve.keys import ApiKey, create_key, list_keys, revoke_key
from mapbuilder.serve.settings import ServeSettings
from roadswarm.logs import server_log_config
from roadswarm.output import emit, json_option

SECRET_ENV = "ROADSWARM_SERVE_URL_SECRET"


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8200, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
def serve_command(host: str, port: int, workers: int) -> None:
    """Serve map tiles, TileJSON, imagery queries and the web viewer at / until stopped."""
    import uvicorn

    from mapbuilder.serve.workers import run_workers

    # Every worker must sign image URLs with one secret: without a configured one, make one
    # here and hand it to the workers through their environment.
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(32))
    options: dict[str, Any] = {
        "app": "mapbuilder.serve.app:app_from_settings",
        "factory": True,
        "log_level": "warning",
        "log_config": server_log_config(),
        # Request lines are below this level: without an access log uvicorn also skips
        # formatting each line's arguments, which it does before the level check drops it.
        "access_log": False,
        "proxy_headers": True,
    }
    if workers > 1 and hasattr(socket, "SO_REUSEPORT"):
        # A socket per worker, so that connections are spread evenly (see workers.py).
        run_workers(options, host=host, port=port, workers=workers)
    else:
        uvicorn.run(host=host, port=port, workers=workers, **options)


@click.group("api")
def api_group() -> None:
    """The consumer API's keys (settings: ROADSWARM_DATABASE_URL, ROADSWARM_SERVE_*)."""


@api_group.group("keys")
def keys_group() -> None:
    """API keys for map consumers: only a hash is stored, the key is shown once."""


def _key_line(key: ApiKey) -> str:
    revoked = f"  REVOKED {key.revoked_at:%Y-%m-%d}" if key.revoked_at else ""
    return f"{key.key_id}  {key.name}  {key.rate_per_s:g}/s burst {key.burst}  created {key.created_at:%Y-%m-%d}{revoked}"


@keys_group.command("create")
@click.option("--name", required=True, help="Who the key is for (shown in lists and usage).")
@click.option(
    "--rate-per-s",
    type=click.FloatRange(min=0.01),
    default=None,
    help="Sustained requests per second.",
)
@click.option(
    "--burst", type=click.IntRange(min=1), default=None, help="Requests a key may make at once."
)
@json_option
def keys_create_command(
    name: str, rate_per_s: float | None, burst: int | None, as_json: bool
) -> None:
    """Create a key and print it once: it cannot be shown again."""
    settings = ServeSettings()
    key, text = create_key(
        open_catalog(IngestSettings()),
        name,
        rate_per_s=rate_per_s or settings.rate_per_s,
        burst=burst or settings.burst,
    )
    message = f"{_key_line(key)}\nkey (shown only now, store it safely): {text}"
    emit({**asdict(key), "key": text}, as_json=as_json, text=message)


@keys_group.command("list")
@json_option
def keys_list_command(as_json: bool) -> None:
    """Every key, oldest first (ids and limits; never the keys themselves)."""
    keys = list_keys(open_catalog(IngestSettings()))
    emit(keys, as_json=as_json, text="\n".join(map(_key_line, keys)) or "no API keys")


@keys_group.command("revoke")
@click.argument("key_id")
@json_option
def keys_revoke_command(key_id: str, as_json: bool) -> None:
    """Revoke a key by its id: requests with it fail from now on."""
    key = revoke_key(open_catalog(IngestSettings()), key_id)
    emit(key, as_json=as_json, text=f"revoked {_key_line(key)}")
