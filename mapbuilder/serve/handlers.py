"""Every error answer is JSON with a code and a message a person can act on."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ingest.api.errors import error_response, install_error_handlers
from mapbuilder.errors import MapError
from mapbuilder.serve.errors import STATUS_CODES, RateLimitedError
from mapbuilder.serve.tiles_api import CORRUPT_RETRY_AFTER_S

log = logging.getLogger(__name__)
HTTP_MESSAGES = {
    404: "no such endpoint: see /docs or /openapi.json for the API's routes",
    405: "this endpoint does not take that method: see /docs for the methods it takes",
}


def _status_of(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500


async def _map_error(request: Request, exc: Exception) -> JSONResponse:
    status = _status_of(exc)
    response = error_response(status, type(exc).__name__, str(exc))
    if isinstance(exc, RateLimitedError):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    if status == 503:
        response.headers["Retry-After"] = str(CORRUPT_RETRY_AFTER_S)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return response


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = HTTP_MESSAGES.get(exc.status_code, str(exc.detail))
    response = error_response(exc.status_code, "http_error", message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    ]
    message = "the request does not match the API's schema (see /docs): " + "; ".join(problems[:5])
    return error_response(422, "invalid_request", message, problems=problems[:50])


def install_handlers(app: FastAPI) -> None:
    """Domain errors (mapbuilder here, ingest through its own table), schema violations and unknown routes, all as JSON."""
    install_error_handlers(app)
    app.add_exception_handler(MapError, _map_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
