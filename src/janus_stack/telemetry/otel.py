"""Tracing on: OpenTelemetry's SDK with a tracer provider owned by this process's Telemetry.

Imported only when tracing is configured (``otel_endpoint`` / the
``JANUS_OTEL_ENDPOINT`` variable) or a test hands in an exporter. The
provider is never installed as OpenTelemetry's global one: two contexts in
one process keep separate tracers, and a library that instruments itself
through the global API sees no change. Trace context travels as W3C
``traceparent``/``tracestate`` headers, in HTTP requests and in the trace
context stored with each queued task.

Export is OTLP over HTTP (protobuf); further exporter settings (headers
for an authenticating collector, timeouts) come from the exporter's own
``OTEL_EXPORTER_OTLP_*`` environment variables.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from janus_stack import __version__
from janus_stack.errors import ConfigError
from janus_stack.telemetry.tracing import AttributeValue, SpanHandle, SpanKind

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
        SpanExporter,
    )
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ConfigError(
        f"tracing is configured but OpenTelemetry is not installed ({exc.name})",
        hint="pip install 'janus-stack[otel]', or unset otel_endpoint / JANUS_OTEL_ENDPOINT",
    ) from exc

if TYPE_CHECKING:
    from opentelemetry.trace import Span

TRACES_PATH = "/v1/traces"
_KINDS = {
    "internal": trace.SpanKind.INTERNAL,
    "server": trace.SpanKind.SERVER,
    "producer": trace.SpanKind.PRODUCER,
    "consumer": trace.SpanKind.CONSUMER,
    "client": trace.SpanKind.CLIENT,
}


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a collector's base URL (``http://collector:4318``)."""
    base = endpoint.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


class _Span:
    def __init__(self, span: Span) -> None:
        self._span = span

    def set(self, key: str, value: AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def rename(self, name: str) -> None:
        self._span.update_name(name)


class OtelTracer:
    """An OpenTelemetry tracer exporting to ``exporter``.

    Args:
        exporter: where finished spans go (OTLP, or an in-memory one in tests).
        service: the ``service.name`` resource attribute (``janus-api``, ``janus-worker``).
        batch: export from a background thread in batches; False exports each
            span as it ends (tests).
    """

    def __init__(self, exporter: SpanExporter, *, service: str, batch: bool = True) -> None:
        resource = Resource.create({"service.name": service, "service.version": __version__})
        self._provider = TracerProvider(resource=resource)
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer("janus_stack", __version__)
        self._propagator = TraceContextTextMapPropagator()
        self._closed = False

    @classmethod
    def otlp(cls, endpoint: str, *, service: str) -> OtelTracer:
        """Export over OTLP/HTTP to the collector at ``endpoint``."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        return cls(OTLPSpanExporter(endpoint=traces_url(endpoint)), service=service)

    @property
    def enabled(self) -> bool:
        return True

    @contextmanager
    def span(
        self, name: str, attributes: Mapping[str, AttributeValue], kind: SpanKind
    ) -> Iterator[SpanHandle]:
        with self._tracer.start_as_current_span(
            name, kind=_KINDS[kind], attributes=dict(attributes)
        ) as span:
            yield _Span(span)

    def record(
        self,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: Mapping[str, AttributeValue],
        error: str | None,
    ) -> None:
        span = self._tracer.start_span(
            name, kind=trace.SpanKind.CLIENT, attributes=dict(attributes), start_time=start_ns
        )
        if error is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, error))
        span.end(end_time=end_ns)

    def carrier(self) -> dict[str, str]:
        found: dict[str, str] = {}
        self._propagator.inject(found)
        return found

    @contextmanager
    def resume(self, carrier: Mapping[str, str]) -> Iterator[None]:
        if "traceparent" not in carrier:
            yield
            return
        token = otel_context.attach(self._propagator.extract(dict(carrier)))
        try:
            yield
        finally:
            otel_context.detach(token)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._provider.shutdown()
