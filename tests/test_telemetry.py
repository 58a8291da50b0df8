"""Telemetry without the API: request IDs in events, tasks that continue their caller's trace.

Spans go to OpenTelemetry's in-memory exporter through the real SDK; the
queue is the real in-process queue on a real ledger.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from janus_stack.events import EventLog
from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.logs import configure_logging
from janus_stack.slots import queue
from janus_stack.slots.queue import TaskHandlers
from janus_stack.telemetry import Telemetry, current_request_id
from janus_stack.telemetry.otel import OtelTracer, traces_url
from janus_stack.telemetry.requests import accept_request_id, bound_request_id
from janus_stack.urls import SlotURL


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def telemetry(spans: InMemorySpanExporter) -> Iterator[Telemetry]:
    observed = Telemetry(OtelTracer(spans, service="janus-test", batch=False))
    yield observed
    observed.close()


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(SlotURL.parse("relational", f"sqlite:///{tmp_path}/ledger.db")) as opened:
        migrations.upgrade(opened)
        yield opened


def test_a_sane_request_id_is_kept_and_anything_else_replaced() -> None:
    assert accept_request_id("client-7f3a:retry.2") == "client-7f3a:retry.2"
    token = "jns_0123abcd_" + "k" * 43  # would be stored in the event log
    for offered in (None, "", "has space", "line\nbreak", "x" * 129, "-leading-dash", token):
        fresh = accept_request_id(offered)
        assert fresh != offered and len(fresh) == 32 and fresh.isalnum()
    assert accept_request_id(None) != accept_request_id(None)


def test_events_appended_during_a_request_carry_its_id(ledger: Ledger) -> None:
    log = EventLog(ledger)
    with bound_request_id("req-1"):
        inside = log.append(tenant="acme", actor="a", type="t.x", subject="s", payload={"n": 1})
        own = log.append(
            tenant="acme", actor="a", type="t.x", subject="s", payload={"request_id": "mine"}
        )
    outside = log.append(tenant="acme", actor="a", type="t.x", subject="s", payload={"n": 2})
    assert inside.payload == {"n": 1, "request_id": "req-1"}
    assert own.payload == {"request_id": "mine"}
    assert outside.payload == {"n": 2}
    assert [e.payload for e in log.query(tenant="acme")] == [
        inside.payload,
        own.payload,
        outside.payload,
    ]
    assert log.verify().ok  # the ID is part of the hashed payload


def test_a_task_runs_in_the_trace_and_request_that_queued_it(
    sqlite_ledger: Ledger,
    telemetry: Telemetry,
    spans: InMemorySpanExporter,
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", set())
    seen: list[str | None] = []
    done = threading.Event()
    handlers = TaskHandlers()

    def work(payload: dict[str, Any]) -> dict[str, Any]:
        seen.append(current_request_id())
        structlog.get_logger("janus.test").info("working", n=payload["n"])
        EventLog(sqlite_ledger).append(
            tenant="acme", actor="worker", type="task.ran", subject="t", payload={}
        )
        done.set()
        return {"ok": True}

    def boom(_payload: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("always fails")

    handlers.register("work", work)
    handlers.register("boom", boom, max_attempts=2, backoff_base=0.0, backoff_max=0.0)
    url = SlotURL.parse("queue", "inline://?workers=1&poll=0.05")
    with queue.open(url, ledger=sqlite_ledger, handlers=handlers) as tasks:
        tasks.telemetry = telemetry
        telemetry.watch_queue(tasks._store.depth)
        with bound_request_id("req-9"), telemetry.span("caller") as _caller:
            tasks.enqueue("work", {"n": 1}, idempotency_key="w1", tenant="acme")
        tasks.enqueue("boom", {}, idempotency_key="b1", tenant="acme")
        assert telemetry.registry.get_sample_value("janus_queue_depth", {"status": "queued"}) == 2
        tasks.start()
        assert tasks.wait_idle(30)
        tasks.stop()
    assert done.is_set() and seen == ["req-9"]

    finished = {span.name: span for span in spans.get_finished_spans()}
    caller, enqueue, run = (
        finished["caller"],
        finished["queue.enqueue work"],
        finished["queue.run work"],
    )
    assert caller.context is not None and run.context is not None and enqueue.context is not None
    assert run.context.trace_id == caller.context.trace_id
    assert run.parent is not None and run.parent.span_id == enqueue.context.span_id
    assert enqueue.parent is not None and enqueue.parent.span_id == caller.context.span_id
    assert run.attributes is not None and run.attributes["janus.request_id"] == "req-9"
    assert run.attributes["janus.outcome"] == "done"
    # A task queued outside any request starts a trace of its own.
    boom_runs = [s for s in spans.get_finished_spans() if s.name == "queue.run boom"]
    assert len(boom_runs) == 2
    assert all(
        s.context is not None and s.context.trace_id != caller.context.trace_id for s in boom_runs
    )

    (ran,) = EventLog(sqlite_ledger).query(type="task.ran")
    assert ran.payload == {"request_id": "req-9"}
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert {"event": "working", "request_id": "req-9"}.items() <= logged[0].items()

    sample = telemetry.registry.get_sample_value
    assert sample("janus_queue_tasks_total", {"task": "work", "outcome": "done"}) == 1
    assert sample("janus_queue_tasks_total", {"task": "boom", "outcome": "retry"}) == 1
    assert sample("janus_queue_tasks_total", {"task": "boom", "outcome": "dead"}) == 1
    assert sample("janus_queue_tasks_enqueued_total", {"task": "boom"}) == 1
    assert sample("janus_queue_task_duration_seconds_count", {"task": "boom"}) == 2
    assert sample("janus_queue_depth", {"status": "dead"}) == 1
    assert sample("janus_queue_depth", {"status": "queued"}) == 0


def test_ingest_stages_are_timed_and_counted(telemetry: Telemetry) -> None:
    with telemetry.stage("prepare") as stage:
        stage.outcome, stage.documents = "ingested", 3
    with telemetry.stage("graph", 0):  # nothing to do: nothing recorded
        pass
    with pytest.raises(ValueError), telemetry.stage("index", 2):
        raise ValueError("embedder broke")
    sample = telemetry.registry.get_sample_value
    assert sample("janus_ingest_stage_runs_total", {"stage": "prepare", "outcome": "ingested"}) == 1
    assert sample("janus_ingest_stage_documents_total", {"stage": "prepare"}) == 3
    assert sample("janus_ingest_stage_runs_total", {"stage": "index", "outcome": "error"}) == 1
    assert sample("janus_ingest_stage_duration_seconds_count", {"stage": "graph"}) is None


def test_otlp_url_and_tracing_off_imports_no_opentelemetry(tmp_path: Path) -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://c:4318/v1/traces/") == "http://c:4318/v1/traces"
    script = (
        "import sys\n"
        "from janus_stack.config import load_settings\n"
        "from janus_stack.context import Janus\n"
        "with Janus(load_settings()) as janus:\n"
        "    janus.ledger\n"
        "    with janus.telemetry.span('x'):\n"
        "        pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"JANUS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert found.stdout.strip() == "[]", found.stdout
