"""The ingest API application: `create_app(services)` for tests and embedding, `app_from_settings`
for `roadswarm ingest serve`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from ingest.api import devices, operations
from ingest.api.errors import install_error_handlers, refusal
from ingest.api.metrics import ApiMetrics
from ingest.api.services import ApiServices
from ingest.queues import create_celery_app
from ingest.services import open_catalog, open_signer, open_store
from ingest.settings import IngestSettings, QueueSettings
from ingest.uploads import LOCAL_UPLOAD_PATH

MAX_JSON_BODY_BYTES = 4 * 1024 * 1024


def create_app(services: ApiServices) -> FastAPI:
    """The API over the given catalog, store, signer and broker."""
    app = FastAPI(
        title="roadswarm ingest",
        version="1",
        description="Devices register, upload keyframes and commit signed batches; operators watch.",
    )
    app.state.services = services
    app.state.metrics = ApiMetrics(services)
    install_error_handlers(app)
    app.include_router(devices.router)
    app.include_router(operations.router)
    app.middleware("http")(_limit_and_measure)
    return app


async def _limit_and_measure(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Refuse oversized bodies before reading them, and time every request."""
    started = time.perf_counter()
    declared = request.headers.get("content-length") or ""
    if (
        request.url.path != LOCAL_UPLOAD_PATH
        and declared.isdigit()
        and int(declared) > MAX_JSON_BODY_BYTES
    ):
        message = f"request bodies are limited to {MAX_JSON_BODY_BYTES} bytes: send smaller batches"
        response: Response = refusal(request, 413, "too_large", message)
    else:
        response = await call_next(request)
    route = request.scope.get("route")
    request.app.state.metrics.observe(
        getattr(route, "path", "unmatched"), response.status_code, started
    )
    return response


def app_from_settings(api_url: str) -> FastAPI:
    """The API configured from `ROADSWARM_*` settings; `api_url` is how devices reach it."""
    settings = IngestSettings()
    queues = QueueSettings()
    celery = create_celery_app(queues.broker_url) if queues.broker_url else None
    services = ApiServices(
        catalog=open_catalog(settings),
        store=open_store(settings),
        signer=open_signer(settings, api_url),
        settings=settings,
        celery=celery,
    )
    return create_app(services)
