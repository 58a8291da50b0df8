"""Errors as HTTP: every expected failure becomes a 4xx/503 with a JSON body naming it.

The body is always::

    {"error": {"status": 404, "type": "not_found", "message": "...", "hint": "..."}}

A 409 (``ConflictError``) also names what conflicted and its state, e.g.
``"run": "<id>", "state": "done"``.

``JanusError`` subclasses map by class (the most specific first); request
validation (wrong types, malformed JSON) is a 422, a JSON body that is not
UTF-8 a 400, a body over the limit a 413 (``body_limit.py``); anything else
is a bug and a 500 whose body says only that (the traceback is logged).
``ERROR_RESPONSES`` declares the problem body in the OpenAPI document.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from janus_stack.errors import (
    ClosedError,
    ConfigError,
    ConflictError,
    HomeLockedError,
    IntegrityError,
    InvalidInputError,
    JanusError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    SlotUnavailableError,
)

log = logging.getLogger("janus.api")


class ApiError(JanusError):
    """An error only the API raises (authentication, authorisation, HTTP framing)."""

    status: int = 400
    type: str = "bad_request"


class UnauthorizedError(ApiError):
    status = 401
    type = "unauthorized"


class ForbiddenError(ApiError):
    status = 403
    type = "forbidden"


# Most specific first: PayloadTooLargeError is an InvalidInputError.
STATUS: tuple[tuple[type[JanusError], int, str], ...] = (
    (PayloadTooLargeError, 413, "payload_too_large"),
    (InvalidInputError, 400, "invalid_input"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (RateLimitedError, 429, "rate_limited"),
    (ClosedError, 503, "closed"),
    (HomeLockedError, 503, "home_locked"),
    (SlotUnavailableError, 503, "slot_unavailable"),
    (ConfigError, 503, "config_error"),
    (IntegrityError, 500, "integrity_error"),
)


class ProblemDetail(BaseModel):
    """What went wrong; some problems add fields (``details``, the conflicting ``state``)."""

    model_config = ConfigDict(extra="allow")

    status: int
    type: str
    message: str
    hint: str | None = None


class Problem(BaseModel):
    """The body of every error response, declared in the OpenAPI document for each route."""

    error: ProblemDetail


_ERRORS = {
    400: "Invalid input: the message names the field or value",
    401: "No API key, or an unknown or revoked one",
    403: "The key's role, scopes or tenant do not allow this",
    404: "No such resource in this tenant",
    409: "The resource is in a state that does not allow this",
    413: "The body is over the server's limit",
    422: "The request does not match this operation's parameters or body",
    429: "Rate limited: retry after the Retry-After header's seconds",
    503: "A store is unavailable or the server is shutting down",
}
# Every route shares these; a route declaring a status itself overrides it.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": text} for status, text in _ERRORS.items()
}


def problem(
    status: int, type_: str, message: str, hint: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "type": type_, "message": message}
    if hint:
        body["hint"] = hint
    body.update(extra)
    return {"error": body}


def classify(exc: JanusError) -> tuple[int, str]:
    if isinstance(exc, ApiError):
        return exc.status, exc.type
    for kind, status, name in STATUS:
        if isinstance(exc, kind):
            return status, name
    return 500, "janus_error"


def problem_for(exc: JanusError) -> dict[str, Any]:
    """The problem body of an expected failure (HTTP answers and WebSocket refusals alike)."""
    status, name = classify(exc)
    extra = exc.details if isinstance(exc, ConflictError) else {}
    return problem(status, name, str(exc), exc.hint, **extra)


def janus_response(exc: JanusError) -> JSONResponse:
    status, _name = classify(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    if isinstance(exc, UnauthorizedError):
        headers["WWW-Authenticate"] = 'Bearer realm="janus"'
    return JSONResponse(problem_for(exc), status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into problem bodies."""

    async def on_janus(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, JanusError)
        return janus_response(exc)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [
            {
                "where": ".".join(str(part) for part in error.get("loc", ())),
                "problem": str(error.get("msg", "")),
            }
            for error in exc.errors()
        ]
        where = "; ".join(f"{d['where']}: {d['problem']}" for d in details[:5])
        return JSONResponse(
            problem(422, "validation_error", f"the request is invalid: {where}", details=details),
            422,
        )

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        names = {
            400: "bad_request",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }
        message = str(exc.detail)
        if isinstance(exc.__cause__, UnicodeDecodeError):  # FastAPI's "error parsing the body"
            cause = exc.__cause__
            message = f"the body is not valid UTF-8 ({cause.reason} at byte {cause.start})"
        return JSONResponse(
            problem(exc.status_code, names.get(exc.status_code, "http_error"), message),
            exc.status_code,
            headers=dict(exc.headers or {}),
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s %s", request.method, request.url.path)
        return JSONResponse(
            problem(500, "internal_error", "an unexpected error occurred; see the server log"),
            500,
        )

    app.add_exception_handler(JanusError, on_janus)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
