"""One table from domain errors to HTTP statuses; every error answer is JSON a person can act on."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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


def error_response(status: int, code: str, message: str, **extra: object) -> JSONResponse:
    """The JSON body of every error: a code for programs and a message for people."""
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


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


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    ]
    message = "the request body does not match the schema (see /openapi.json): " + "; ".join(
        problems[:5]
    )
    return error_response(422, "invalid_request", message, problems=problems[:50])


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
    """Map domain errors and schema violations to JSON answers."""
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(IngestError, _domain_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(ClientDisconnect, _client_gone)
