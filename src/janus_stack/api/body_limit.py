"""A cap on every request body, enforced while it streams in.

FastAPI reads a JSON body whole before validating it, so without a cap one
request could make the server hold gigabytes. This ASGI middleware refuses
a ``Content-Length`` over the route's limit before reading a byte, and
counts the bytes of a body sent without one (chunked), stopping with 413 as
soon as the count passes the limit. The error is raised from ``receive``, so
whichever code reads the body (FastAPI's JSON parsing, the multipart
parser) stops there and the exception handlers answer with a problem body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from janus_stack.api.errors import problem

# Room for the largest JSON body a route takes: a 1 MB workflow or manifest
# sent as a JSON string, which escaping can grow by a few times.
DEFAULT_BODY_BYTES = 4 * 1024 * 1024


class BodyLimitMiddleware:
    """Refuse request bodies over ``default`` bytes.

    Args:
        routes: ``(method, path)`` → its own limit, or None for a route that
            enforces a limit itself (the upload, whose 413 names the file limit).
    """

    def __init__(
        self, app: ASGIApp, *, default: int, routes: Mapping[tuple[str, str], int | None]
    ) -> None:
        self.app = app
        self.default = default
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.routes.get((scope["method"], scope["path"].rstrip("/")), self.default)
        if limit is None:
            await self.app(scope, receive, send)
            return
        cap: int = limit
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > cap:
                await _refuse(send, f"the request body ({int(value):,} bytes)", cap)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise HTTPException(413, _message("the request body", cap))
            return message

        await self.app(scope, counted, send)


def _message(what: str, limit: int) -> str:
    return f"{what} is over this route's limit of {limit:,} bytes; nothing was stored"


async def _refuse(send: Send, what: str, limit: int) -> None:
    """Answer 413 before the app runs (its exception handlers are not reachable from here)."""
    body = json.dumps(problem(413, "payload_too_large", _message(what, limit))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
