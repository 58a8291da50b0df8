"""Metrics and traces of one process, recorded by the core without importing the API.

A :class:`Telemetry` object is carried by the ``Janus`` context (and handed
to its slots): it owns a Prometheus ``CollectorRegistry`` (the API exposes
exactly this registry at ``/metrics``; ``janus worker --metrics-port``
serves it too) and a tracer, which is a no-op unless an OTLP endpoint is
configured. Nothing here is global: two contexts in one process record
into separate registries.

The core calls a handful of coarse hooks: :meth:`Telemetry.stage` around an
ingestion stage, :meth:`Telemetry.task_run` around a queued task,
:meth:`Telemetry.llm_call` after a model call, :meth:`Telemetry.cache_lookup`
per cache decision and :meth:`Telemetry.span` around a retrieval mode. The
families are listed in :mod:`janus_stack.telemetry.families`; request IDs
in :mod:`janus_stack.telemetry.requests`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from janus_stack.telemetry.families import CoreMetrics, QueueDepthCollector
from janus_stack.telemetry.requests import (
    REQUEST_ID_KEY,
    bound_request_id,
    current_request_id,
)
from janus_stack.telemetry.tracing import AttributeValue, NoTracer, SpanHandle, SpanKind, Tracer

if TYPE_CHECKING:
    from janus_stack.config import Settings

__all__ = ["REQUEST_ID_KEY", "StageRun", "TaskRun", "Telemetry", "current_request_id"]

REQUEST_ID_ATTRIBUTE = "janus.request_id"


def provider_label(provider: str) -> str:
    """A model provider as a metric label: its redacted URL without the query."""
    return provider.split("?", 1)[0]


@dataclass
class StageRun:
    """One run of an ingestion stage; the caller may set what the run found."""

    outcome: str = "ok"
    documents: int = 1


@dataclass
class TaskRun:
    """One attempt of a queued task; the queue sets how it was settled.

    ``unsettled`` stays when the outcome could not be recorded (the ledger
    failed); ``interrupted`` when the attempt raised past the queue.
    """

    outcome: str = "unsettled"


class Telemetry:
    """See the module docstring.

    Args:
        tracer: the tracer; tracing is off (``NoTracer``) by default.
        registry: the Prometheus registry; a fresh one by default.
    """

    def __init__(
        self, tracer: Tracer | None = None, *, registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.metrics = CoreMetrics(self.registry)
        self.tracer: Tracer = tracer if tracer is not None else NoTracer()
        self._queue_watched = False

    @classmethod
    def from_settings(cls, settings: Settings, *, service: str = "janus") -> Telemetry:
        """Tracing over OTLP when ``settings.otel_endpoint`` is set, else metrics only."""
        if not settings.otel_endpoint:
            return cls()
        from janus_stack.telemetry.otel import OtelTracer  # noqa: PLC0415 - only when tracing

        return cls(OtelTracer.otlp(settings.otel_endpoint, service=service))

    def close(self) -> None:
        """Export buffered spans; metrics stay readable."""
        self.tracer.close()

    # -- spans ---------------------------------------------------------------------

    def span(
        self, name: str, *, kind: SpanKind = "internal", **attributes: AttributeValue
    ) -> AbstractContextManager[SpanHandle]:
        """A span around the block, tagged with the current request ID."""
        request_id = current_request_id()
        if request_id is not None:
            attributes[REQUEST_ID_ATTRIBUTE] = request_id
        return self.tracer.span(name, attributes, kind)

    def carrier(self) -> dict[str, str]:
        """What a queued task carries to its worker: trace context and request ID."""
        found = self.tracer.carrier()
        request_id = current_request_id()
        if request_id is not None:
            found[REQUEST_ID_KEY] = request_id
        return found

    # -- hooks of the core -------------------------------------------------------------

    @contextmanager
    def stage(self, name: str, documents: int = 1) -> Iterator[StageRun]:
        """Time one run of ingestion stage ``name`` (a span, a histogram and counters).

        A run over no documents (every version had done the stage) records nothing.
        """
        run = StageRun(documents=documents)
        if documents == 0:
            yield run
            return
        start = time.perf_counter()
        with self.span(f"ingest.{name}", documents=documents) as span:
            try:
                yield run
            except BaseException:
                run.outcome = "error"
                raise
            finally:
                span.set("janus.outcome", run.outcome)
                metrics = self.metrics
                metrics.stage_seconds.labels(name).observe(time.perf_counter() - start)
                metrics.stage_runs.labels(name, run.outcome).inc()
                metrics.stage_documents.labels(name).inc(run.documents)

    def task_enqueued(self, name: str) -> None:
        self.metrics.enqueued.labels(name).inc()

    @contextmanager
    def task_run(
        self, name: str, carrier: Mapping[str, str], **attributes: AttributeValue
    ) -> Iterator[TaskRun]:
        """Run a task attempt inside the trace and request that queued it."""
        run = TaskRun()
        start = time.perf_counter()
        with (
            bound_request_id(carrier.get(REQUEST_ID_KEY)),
            self.tracer.resume(carrier),
            self.span(f"queue.run {name}", kind="consumer", task=name, **attributes) as span,
        ):
            try:
                yield run
            except BaseException:
                run.outcome = "interrupted"
                raise
            finally:
                span.set("janus.outcome", run.outcome)
                self.metrics.tasks.labels(name, run.outcome).inc()
                self.metrics.task_seconds.labels(name).observe(time.perf_counter() - start)

    def llm_call(
        self,
        *,
        provider: str,
        model: str,
        latency_s: float,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        time_to_first_token_s: float | None = None,
        error: str | None = None,
    ) -> None:
        """Record one model call that ended (``error`` names the failure, if it failed)."""
        label = provider_label(provider)
        metrics = self.metrics
        metrics.llm_requests.labels(label, model, "ok" if error is None else "error").inc()
        metrics.llm_seconds.labels(label, model).observe(latency_s)
        metrics.llm_tokens.labels(label, model, "prompt").inc(prompt_tokens)
        metrics.llm_tokens.labels(label, model, "completion").inc(completion_tokens)
        if time_to_first_token_s is not None:
            metrics.llm_ttft.labels(label, model).observe(time_to_first_token_s)
        end = time.time_ns()
        attributes: dict[str, AttributeValue] = {
            "gen_ai.system": label,
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": prompt_tokens,
            "gen_ai.usage.output_tokens": completion_tokens,
        }
        if time_to_first_token_s is not None:
            attributes["janus.llm.ttft_s"] = time_to_first_token_s
        request_id = current_request_id()
        if request_id is not None:
            attributes[REQUEST_ID_ATTRIBUTE] = request_id
        self.tracer.record("llm.generate", end - int(latency_s * 1e9), end, attributes, error)

    def llm_cost(self, provider: str, model: str, usd: float) -> None:
        self.metrics.llm_cost.labels(provider_label(provider), model).inc(usd)

    def cache_lookup(self, cache: str, hit: bool) -> None:
        self.metrics.cache.labels(cache, "hit" if hit else "miss").inc()

    # -- scrape-time gauges ------------------------------------------------------------

    def watch_queue(self, count: Callable[[], Mapping[str, int]]) -> None:
        """Export ``janus_queue_depth`` from ``count`` at every scrape (once per registry)."""
        if not self._queue_watched:
            self.registry.register(QueueDepthCollector(count))
            self._queue_watched = True
