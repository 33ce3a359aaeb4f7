"""One table from domain errors to HTTP statuses; every error answer is JSON a person can act on."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ingest.errors import (
    AuthenticationError,
    BatchRejectedError,
    CatalogError,
    DeviceRevokedError,
    EnrollmentRefusedError,
    IngestError,
    InvalidObjectKeyError,
    NotFoundError,
    ReplayError,
    UploadRefusedError,
)
from ingest.protocol import DEVICE_HEADER

log = logging.getLogger(__name__)

STATUS_CODES: dict[type[Exception], int] = {
    AuthenticationError: 401,
    DeviceRevokedError: 403,
    EnrollmentRefusedError: 403,
    UploadRefusedError: 403,
    NotFoundError: 404,
    ReplayError: 409,
    BatchRejectedError: 422,
    InvalidObjectKeyError: 400,
    CatalogError: 503,
}
# What the framework's own refusals (unreadable bodies, unknown routes) tell people to do.
HTTP_HINTS = {
    400: "send the body /openapi.json describes for this route (JSON in UTF-8)",
    404: "no such endpoint: see /docs or /openapi.json for the API's routes",
    405: "this endpoint does not take that method: see /docs for the methods it takes",
}


def error_response(status: int, code: str, message: str, **extra: object) -> JSONResponse:
    """The JSON body of every error: a code for programs and a message for people."""
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """`text` with control characters escaped, so what a client sent cannot forge log lines."""
    return _CONTROL.sub(lambda found: repr(found.group())[1:-1], text)


def refusal(
    request: Request, status: int, code: str, message: str, *, caller: str = "", **extra: object
) -> JSONResponse:
    """A 4xx answer, also logged (one line at INFO) so operators see who gets refused and why;
    `caller` names who asked (default: the device the request says it comes from)."""
    device = request.headers.get(DEVICE_HEADER, "")[:12]
    log.info(
        "%s %s refused %d %s (%s): %s",
        request.method,
        request.url.path,
        status,
        code,
        caller or (f"device {device}" if device else "anonymous"),
        one_line(message[:500]),
    )
    return error_response(status, code, message, **extra)


def _status_of(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    status = _status_of(exc)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return error_response(status, type(exc).__name__, str(exc))
    return refusal(request, status, type(exc).__name__, str(exc))


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    ]
    message = "the request body does not match the schema (see /openapi.json): " + "; ".join(
        problems[:5]
    )
    return refusal(request, 422, "invalid_request", message, problems=problems[:50])


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    hint = HTTP_HINTS.get(exc.status_code)
    detail = str(exc.detail).rstrip(".")
    message = f"{detail}: {hint}" if exc.status_code == 400 else hint or detail
    response = refusal(request, exc.status_code, "http_error", message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    # A device on a bad network hangs up mid-upload all the time: nothing was stored (the object
    # is written only once its bytes are complete and checked) and the device will try again.
    log.info(
        "%s %s: the client disconnected before sending the whole body",
        request.method,
        request.url.path,
    )
    return error_response(400, "client_disconnected", "the request body ended early; send it again")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(
        500, "internal_error", "the server failed on this request; it is logged, try again later"
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, schema violations, unreadable bodies and unknown routes to JSON answers."""
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(IngestError, _domain_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
