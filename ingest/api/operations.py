"""Routes for the platform itself: liveness, readiness, metrics, MinIO notifications, and the
embedded store's upload endpoint."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from ingest.api.devices import Services
from ingest.api.errors import refusal
from ingest.db import schema_is_current
from ingest.errors import AuthenticationError, UploadRefusedError
from ingest.notifications import frames_to_queue
from ingest.ops import queue_depths
from ingest.uploads import LOCAL_UPLOAD_PATH, LocalUploadSigner

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])
FIELD_NAMES = ("key", "size", "sha256", "expires", "signature")


@router.get("/healthz")
def health() -> dict[str, str]:
    """The process is up (liveness)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is not ready"}})
def ready(api: Services) -> JSONResponse:
    """The catalog (at the current schema), the store and the broker answer (readiness)."""
    checks = {
        "catalog": _catalog_ready(api),
        "store": _store_ready(api),
        "broker": _broker_ready(api),
    }
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


def _catalog_ready(api: Services) -> str:
    try:
        with api.catalog.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current = schema_is_current(api.catalog.engine)
    except Exception as exc:  # readiness reports any failure instead of failing itself
        return f"unreachable: {exc}"
    return "ok" if current else "schema out of date: run `roadswarm ingest migrate`"


def _store_ready(api: Services) -> str:
    try:
        api.store.head("readiness/probe")
    except Exception as exc:  # as above
        return f"unreachable: {exc}"
    return "ok"


def _broker_ready(api: Services) -> str:
    if api.celery is None:
        return "not configured"
    depths = queue_depths(api.celery)
    return "ok" if any(depth is not None for depth in depths.values()) else "unreachable"


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text exposition of the pipeline's state."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.post(LOCAL_UPLOAD_PATH, status_code=201, tags=["devices"])
async def upload_object(request: Request, api: Services) -> JSONResponse:
    """The embedded store's upload: a multipart POST of a ticket's fields and the file."""
    if not isinstance(api.signer, LocalUploadSigner):
        return refusal(
            request, 404, "not_found", "this deployment stores objects in S3: upload there"
        )
    limit = api.settings.max_frame_bytes + 64 * 1024
    declared = request.headers.get("content-length") or ""
    if not declared.isdigit() or not 0 < int(declared) <= limit:
        message = f"send the form with a Content-Length of at most {limit} bytes"
        return refusal(request, 413, "too_large", message)
    async with request.form(max_files=1, max_fields=len(FIELD_NAMES)) as form:
        fields = {name: str(form.get(name, "")) for name in FIELD_NAMES}
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise UploadRefusedError(
                "the form has no file part named 'file': send the frame as 'file'"
            )
        data = await upload.read()
    key = api.signer.check(fields, data, api.clock())
    stored = api.store.put_bytes(key, data, content_type="image/jpeg")
    return JSONResponse({"key": stored.key, "size": stored.size, "sha256": stored.sha256}, 201)


@router.post("/v1/notifications/minio", tags=["operations"])
def minio_notification(
    event: dict[str, Any], api: Services, authorization: Annotated[str, Header()] = ""
) -> dict[str, int]:
    """MinIO's webhook target: a new object of a committed frame queues its validation."""
    expected = api.settings.notify_token
    # Compared as bytes: compare_digest refuses str with non-ASCII characters.
    presented, wanted = authorization.encode(), f"Bearer {expected}".encode()
    if not expected or not hmac.compare_digest(presented, wanted):
        raise AuthenticationError(
            "bucket notifications need 'Authorization: Bearer <ROADSWARM_NOTIFY_TOKEN>'"
        )
    frame_ids = frames_to_queue(api.catalog, event)
    return {"queued": api.queue_validation(frame_ids)}
