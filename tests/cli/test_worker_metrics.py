"""``janus worker`` observability: its /metrics port, and its spans joining the caller's trace.

A real ``janus worker`` process on the machine's RabbitMQ (a queue prefix of
this test, deleted afterwards), with ``JANUS_OTEL_ENDPOINT`` pointing at an
OTLP collector stand-in. The test enqueues a built-in task from this
process inside a span of its own and a request ID: the worker's task span
must arrive at the collector in that trace, and its /metrics must count
the task.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from janus_stack.config import load_settings
from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.slots import queue
from janus_stack.slots.queue import PROBE_TASK, TaskHandlers
from janus_stack.telemetry import Telemetry
from janus_stack.telemetry.otel import OtelTracer
from janus_stack.telemetry.requests import bound_request_id
from otlp_collector import Collector
from services import own_rabbitmq_queue


@pytest.fixture
def queue_url(amqp_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with own_rabbitmq_queue(amqp_url, monkeypatch) as url:
        yield url


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    running = Collector()
    monkeypatch.setenv("JANUS_OTEL_ENDPOINT", running.url)
    yield running
    running.close()


def start_worker() -> tuple[subprocess.Popen[str], dict[str, object]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "janus_stack", "worker", "--json", "--metrics-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 120)
    line = process.stdout.readline() if ready else ""
    if not line:
        process.kill()
        pytest.fail(f"janus worker did not start: {process.communicate(timeout=10)[1]}")
    return process, json.loads(line)


def test_worker_metrics_and_spans_join_the_callers_trace(
    _isolated_home: Path, queue_url: str, collector: Collector
) -> None:
    spans = InMemorySpanExporter()
    caller = Telemetry(OtelTracer(spans, service="janus-test", batch=False))
    settings = load_settings()
    process, started = start_worker()
    try:
        metrics_url = str(started["metrics"])
        assert metrics_url.startswith("http://127.0.0.1:") and metrics_url.endswith("/metrics")
        with Ledger(settings.slot_url("relational")) as ledger:
            migrations.ensure_current(ledger)
            with queue.open(
                settings.slot_url("queue"), ledger=ledger, handlers=TaskHandlers()
            ) as tasks:
                tasks.telemetry = caller
                with bound_request_id("worker-req-1"), caller.span("client"):
                    record = tasks.enqueue(
                        PROBE_TASK, {"nonce": "n1"}, idempotency_key="n1", tenant="_doctor"
                    )
                deadline = time.monotonic() + 60
                while tasks.get(record.id).status != "done":
                    assert time.monotonic() < deadline, tasks.get(record.id)
                    time.sleep(0.05)
                assert tasks.get(record.id).trace_context["request_id"] == "worker-req-1"
        exposed = httpx.get(metrics_url, timeout=10).text
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err

    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposed)
        for sample in family.samples
    }
    done = (("outcome", "done"), ("task", PROBE_TASK))
    assert found[("janus_queue_tasks_total", done)] == 1
    assert found[("janus_queue_task_duration_seconds_count", (("task", PROBE_TASK),))] == 1
    assert ("janus_queue_depth", (("status", "queued"),)) in found

    (client,) = [s for s in spans.get_finished_spans() if s.name == "client"]
    (enqueue,) = [s for s in spans.get_finished_spans() if s.name.startswith("queue.enqueue")]
    assert client.context is not None and enqueue.context is not None
    runs = [(n, s) for n, s in collector.spans() if s.name == f"queue.run {PROBE_TASK}"]
    assert len(runs) == 1, collector.spans()
    service, run = runs[0]
    assert service == "janus-worker"
    assert int.from_bytes(run.trace_id, "big") == client.context.trace_id
    assert int.from_bytes(run.parent_span_id, "big") == enqueue.context.span_id
    attributes = {a.key: a.value for a in run.attributes}
    assert attributes["janus.request_id"].string_value == "worker-req-1"
    assert attributes["janus.outcome"].string_value == "done"
