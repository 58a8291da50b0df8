"""Each HTTP request's ID, server span and access log line.

The outermost middleware. It takes the client's ``X-Request-ID`` when it
is a sane token (else makes one), returns it as a response header and
binds it for the request (``telemetry.requests``): every log line, event
and span of the request, and every task it queues, carries it. It also
continues a client's W3C ``traceparent``, opens the request's server span
(named after the route template once routing has found it) and writes one
structured ``http.request`` line at info level.
"""

from __future__ import annotations

import time

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from janus_stack.telemetry import Telemetry
from janus_stack.telemetry.requests import REQUEST_ID_HEADER, accept_request_id, bound_request_id

TRACE_HEADERS = ("traceparent", "tracestate")

log = structlog.get_logger("janus.api")


class RequestContextMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = accept_request_id(headers.get(REQUEST_ID_HEADER))
        carrier = {name: value for name in TRACE_HEADERS if (value := headers.get(name))}
        method = scope.get("method", "WEBSOCKET")
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            elif message["type"] == "websocket.accept":
                status = 101
            await send(message)

        start = time.perf_counter()
        with (
            bound_request_id(request_id),
            self.telemetry.tracer.resume(carrier),
            self.telemetry.span(method, kind="server", **{"http.request.method": method}) as span,
        ):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = scope.get("route")
                template = route.path if isinstance(route, Route | WebSocketRoute) else "unmatched"
                span.rename(f"{method} {template}")
                span.set("http.route", template)
                span.set("http.response.status_code", status)
                log.info(
                    "http.request",
                    method=method,
                    route=template,
                    status=status,
                    duration_ms=round((time.perf_counter() - start) * 1000, 2),
                )
