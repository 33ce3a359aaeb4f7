"""Every error answer is JSON with a code and a message a person can act on."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ingest.api.errors import error_response, install_error_handlers, refusal
from mapbuilder.errors import MapError
from mapbuilder.serve.auth import presented_key
from mapbuilder.serve.errors import STATUS_CODES, BadKeyError, RateLimitedError
from mapbuilder.serve.keys import parse_key
from mapbuilder.serve.tiles_api import CORRUPT_RETRY_AFTER_S

log = logging.getLogger(__name__)


def _status_of(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500


def _caller(request: Request) -> str:
    """Who asked, for the log: the key's id (never the key itself), if it carries one."""
    presented = presented_key(request)
    try:
        return f"key {parse_key(presented)[0]}" if presented else "anonymous"
    except BadKeyError:
        return "malformed key"


async def _map_error(request: Request, exc: Exception) -> JSONResponse:
    status = _status_of(exc)
    code, message = type(exc).__name__, str(exc)
    response = (
        error_response(status, code, message)
        if status >= 500
        else refusal(request, status, code, message, caller=_caller(request))
    )
    if isinstance(exc, RateLimitedError):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    if status == 503:
        response.headers["Retry-After"] = str(CORRUPT_RETRY_AFTER_S)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return response


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    ]
    message = "the request does not match the API's schema (see /docs): " + "; ".join(problems[:5])
    return refusal(
        request, 422, "invalid_request", message, caller=_caller(request), problems=problems[:50]
    )


def install_handlers(app: FastAPI) -> None:
    """Domain errors (mapbuilder here, ingest through its own table, which also answers unreadable
    bodies and unknown routes), and schema violations, all as JSON."""
    install_error_handlers(app)
    app.add_exception_handler(MapError, _map_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
