"""Errors the client raises; each carries the server's problem body.

JanusAPIError              any non-2xx answer (``status``, ``type``, ``message``, ``hint``)
├── BadRequestError        400, 422
├── UnauthorizedError      401
├── ForbiddenError         403
├── NotFoundError          404
├── ConflictError          409 (``details``: what conflicted and its state, e.g. run and state)
├── PayloadTooLargeError   413
├── RateLimitedError       429 (``retry_after`` seconds)
└── UnavailableError       503
StreamError                the server reported an error inside an SSE stream
"""

from __future__ import annotations

from typing import Any


class JanusAPIError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        assert isinstance(error, dict)
        self.status = status
        self.type = str(error.get("type", "http_error"))
        self.message = str(error.get("message", f"HTTP {status}"))
        self.hint = error.get("hint")
        self.body = body
        super().__init__(f"{status} {self.type}: {self.message}")


class BadRequestError(JanusAPIError):
    pass


class UnauthorizedError(JanusAPIError):
    pass


class ForbiddenError(JanusAPIError):
    pass


class NotFoundError(JanusAPIError):
    pass


class ConflictError(JanusAPIError):
    """The target's state forbids the request (resume a finished run, pause a cancelled one)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        error = body.get("error")
        known = ("status", "type", "message", "hint")
        self.details: dict[str, Any] = (
            {k: v for k, v in error.items() if k not in known} if isinstance(error, dict) else {}
        )


class PayloadTooLargeError(JanusAPIError):
    pass


class RateLimitedError(JanusAPIError):
    def __init__(self, status: int, body: dict[str, Any], retry_after: float) -> None:
        super().__init__(status, body)
        self.retry_after = retry_after


class UnavailableError(JanusAPIError):
    pass


class StreamError(JanusAPIError):
    """An ``error`` event ended a server-sent event stream."""


_BY_STATUS: dict[int, type[JanusAPIError]] = {
    400: BadRequestError,
    422: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    503: UnavailableError,
}


def error_for(status: int, body: dict[str, Any], headers: dict[str, str]) -> JanusAPIError:
    if status == 429:
        try:
            retry = float(headers.get("retry-after", "1"))
        except ValueError:
            retry = 1.0
        return RateLimitedError(status, body, retry)
    return _BY_STATUS.get(status, JanusAPIError)(status, body)
