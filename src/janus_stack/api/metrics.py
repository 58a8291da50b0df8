"""Prometheus metrics of the HTTP layer, in the registry of the process's Telemetry.

Exposed at ``/metrics`` in the text format, together with the core's
families (ingest stages, queue, language models, caches: see
``janus_stack.telemetry.families``); ``deploy/observability/`` has a
scrape config and a Grafana dashboard for exactly these names:

* ``janus_http_request_duration_seconds{route,method,status}`` histogram;
  ``route`` is the route template (``/v1/documents/{document_id}``), never
  the raw path, so label cardinality stays bounded.
* ``janus_http_requests_in_flight`` gauge.
* ``janus_retrieval_duration_seconds{mode}`` histogram (dense, keyword,
  graph, hybrid, memory, ask).
* ``janus_rate_limited_total{scope}`` counter (key, tenant).
* ``janus_auth_refusals_total{reason}`` counter.
* ``janus_sse_disconnects_total`` counter: streams the client left early.
* ``janus_event_log_length`` gauge, read from the log at scrape time.
* ``janus_uploaded_bytes_total`` counter.

Who may read them is ``ServerOptions.metrics_auth`` (an API key with
``metrics:read`` by default); :func:`metrics_listener` serves the same
registry on a separate port without a key, for a scraper on a private
interface.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from janus_stack.errors import ConfigError

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The HTTP layer's metrics; the server binds ``event_log`` to the log at start-up."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.active = 0
        self.http = Histogram(
            "janus_http_request_duration_seconds",
            "HTTP request latency by route template, method and status",
            ("route", "method", "status"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "janus_http_requests_in_flight", "HTTP requests being served", registry=self.registry
        )
        self.retrieval = Histogram(
            "janus_retrieval_duration_seconds",
            "Retrieval latency inside the server by mode",
            ("mode",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "janus_rate_limited_total",
            "Requests refused by a rate limit",
            ("scope",),
            registry=self.registry,
        )
        self.auth_refusals = Counter(
            "janus_auth_refusals_total",
            "Requests refused by authentication or authorisation",
            ("reason",),
            registry=self.registry,
        )
        self.sse_disconnects = Counter(
            "janus_sse_disconnects_total",
            "Server-sent event streams the client closed before the end",
            registry=self.registry,
        )
        self.uploaded_bytes = Counter(
            "janus_uploaded_bytes_total",
            "Bytes received by document uploads",
            registry=self.registry,
        )
        for scope in ("key", "tenant"):
            self.rate_limited.labels(scope)  # exported as 0 from the start, not "no data"
        self.event_log = Gauge(
            "janus_event_log_length", "Events in the audit log", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Times every HTTP request and labels it with its route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        self.metrics.active += 1
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.active -= 1
            route = scope.get("route")
            template = route.path if isinstance(route, Route) else "unmatched"
            self.metrics.http.labels(template, scope["method"], str(status)).observe(
                time.perf_counter() - start
            )


@contextmanager
def metrics_listener(registry: CollectorRegistry, host: str, port: int) -> Iterator[int]:
    """Serve ``registry`` at ``http://host:port/metrics`` while open; yields the bound port.

    It asks for no key: the interface it binds is what keeps it private
    (127.0.0.1 unless told otherwise), as with ``janus worker --metrics-port``.
    """
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --metrics-port, or leave it out",
        ) from None
    try:
        yield int(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
