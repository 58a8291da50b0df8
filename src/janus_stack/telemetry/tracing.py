"""The tracing contract the core codes against, and the tracer used when tracing is off.

Janus never imports OpenTelemetry unless an OTLP endpoint is configured:
the core talks to a :class:`Tracer`, which is :class:`NoTracer` by default
(nothing recorded, nothing imported) and ``otel.OtelTracer`` when tracing
is on. Spans are coarse on purpose: one per HTTP request, retrieval mode,
ingest stage, queued task and model call, never one per row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Literal, Protocol

AttributeValue = str | bool | int | float
SpanKind = Literal["internal", "server", "producer", "consumer", "client"]


class SpanHandle(Protocol):
    """The running span, for what is only known at its end (route, status, outcome)."""

    def set(self, key: str, value: AttributeValue) -> None: ...

    def rename(self, name: str) -> None: ...


class Tracer(Protocol):
    """What the core needs from a tracer; see the module docstring."""

    @property
    def enabled(self) -> bool: ...

    def span(
        self, name: str, attributes: Mapping[str, AttributeValue], kind: SpanKind
    ) -> AbstractContextManager[SpanHandle]:
        """A span around the block, current inside it (its children nest under it)."""
        ...

    def record(
        self,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: Mapping[str, AttributeValue],
        error: str | None,
    ) -> None:
        """A span for work that already happened (a streamed model call), under the current one.

        Streams are generators resumed on whatever thread the consumer
        uses; a span made current inside one could be detached in another
        context, so such work is recorded after the fact instead.
        """
        ...

    def carrier(self) -> dict[str, str]:
        """The current span as W3C trace context headers (``traceparent``, ``tracestate``)."""
        ...

    def resume(self, carrier: Mapping[str, str]) -> AbstractContextManager[None]:
        """Continue the trace ``carrier`` names: spans opened inside become its children."""
        ...

    def close(self) -> None:
        """Export what is buffered and stop; spans after this are dropped."""
        ...


class _NoSpan:
    def set(self, key: str, value: AttributeValue) -> None:
        return None

    def rename(self, name: str) -> None:
        return None


class NoTracer:
    """Tracing off: every call is a no-op and nothing of OpenTelemetry is imported."""

    @property
    def enabled(self) -> bool:
        return False

    @contextmanager
    def span(
        self, name: str, attributes: Mapping[str, AttributeValue], kind: SpanKind
    ) -> Iterator[SpanHandle]:
        yield _NoSpan()

    def record(
        self,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: Mapping[str, AttributeValue],
        error: str | None,
    ) -> None:
        return None

    def carrier(self) -> dict[str, str]:
        return {}

    def resume(self, carrier: Mapping[str, str]) -> AbstractContextManager[None]:
        return nullcontext()

    def close(self) -> None:
        return None
