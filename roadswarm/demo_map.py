"""The demo's map: the consumer API and its MapLibre viewer (`roadswarm serve`) over the demo's
catalog and store, on loopback, until Ctrl-C. Every layer is public and the page gets a key of
its own, so frames can be queried and opened as a map consumer would."""

from __future__ import annotations

import contextlib
import secrets
import socket
from pathlib import Path

import click
import uvicorn
from starlette.staticfiles import StaticFiles

from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from mapbuilder.serve.app import create_app
from mapbuilder.serve.fastpath import CachedTileFastPath
from mapbuilder.serve.keys import create_key
from mapbuilder.serve.services import ServeServices, tile_cache
from mapbuilder.serve.settings import ServeSettings
from mapbuilder.serve.signing import UrlSigner
from mapbuilder.tiles.layers import LAYERS
from roadswarm.demo_ingest import catalog_url
from roadswarm.errors import ServiceError


def demo_map_services(workdir: Path) -> tuple[ServeServices, str]:
    """The API's services over the demo's catalog and store, and a new key for the viewer."""
    catalog = Catalog.connect(catalog_url(workdir))
    settings = ServeSettings(public_layers=tuple(LAYERS))
    _, key = create_key(catalog, "demo viewer", rate_per_s=200.0, burst=400)
    services = ServeServices(
        catalog=catalog,
        store=LocalObjectStore(workdir / "objects"),
        settings=settings,
        signer=UrlSigner(secrets.token_urlsafe(32), settings.image_url_ttl_s),
        cache=tile_cache(settings),
    )
    return services, key


def serve_demo_map(workdir: Path, port: int) -> None:
    """Serve the map API and viewer on 127.0.0.1:`port` (0: any free port) until Ctrl-C."""
    services, key = demo_map_services(workdir)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
        listener.listen(128)  # connections wait in the backlog until uvicorn has started
    except OSError as exc:
        listener.close()
        msg = f"cannot serve the viewer on 127.0.0.1:{port} ({exc.strerror}): pass --port or --no-serve"
        raise ServiceError(msg) from exc
    bound = listener.getsockname()[1]
    app = create_app(services)
    # The run's summary page and its pictures, beside the map.
    app.mount("/demo", StaticFiles(directory=workdir / "site", html=True), name="demo")
    config = uvicorn.Config(CachedTileFastPath(app, services), log_level="warning")
    click.echo(
        f"viewer on http://127.0.0.1:{bound}/?key={key} (the run: /demo/; Ctrl-C to stop)", err=True
    )
    # uvicorn re-raises the Ctrl-C it shut down on: here that is the normal way to stop.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[listener])
    click.echo("stopped", err=True)
