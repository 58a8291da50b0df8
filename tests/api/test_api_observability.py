"""Observability of the API: request IDs, traces across the queue, /metrics, OTLP, no secrets.

* In process (the app under Starlette's test client, spans in OpenTelemetry's
  in-memory exporter): one request that queues a workflow run gives one
  trace from the HTTP span through the enqueue to the worker's task span,
  all carrying the request's ID, which the run's events carry too.
* A real ``janus serve`` with ``otel_endpoint`` in its ``janus.toml`` exports
  over OTLP/HTTP to a collector stand-in started here (real exporter, real
  HTTP, protobuf parsed with the OTLP message types).
* A real ``janus serve`` with the tiny llama.cpp model: after an ingest, a
  search, an ask and two runs of one workflow, ``/metrics`` holds every
  core family with sensible labels and non-zero counts.
* A real ``janus serve`` on a PostgreSQL ledger whose password is a secret
  reference, at log level debug: no log line holds the password or a token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import Server, make_keys, start_server, stop_server
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from janus_stack.api.app import create_app
from janus_stack.api.keys import KeyStore
from janus_stack.api.state import ServerOptions
from janus_stack.client import JanusClient
from janus_stack.config import load_settings
from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.telemetry import Telemetry
from janus_stack.telemetry.otel import OtelTracer
from otlp_collector import Collector

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONDENSE = """\
name: condense
description: Condense a text with the summariser agent.
inputs:
  text: {description: "What to condense."}
steps:
  - {id: short, kind: agent, agent: summariser, input: "{{ inputs.text }}"}
output:
  summary: "{{ steps.short.output.text }}"
"""
TEXT = (
    "Apollo 8 was the first crewed spacecraft to orbit the Moon. Frank Borman commanded it. "
    "James Lovell and William Anders flew with him in December 1968."
)
APOLLO = TEXT.encode() + b"\n"
TERMINAL = ("done", "failed", "cancelled", "budget_exceeded")


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def wait_for_run(get: Any, run_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = get(run_id)
        if run["status"] in TERMINAL:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.1)


# -- one trace, in process -----------------------------------------------------------------


def test_one_trace_runs_from_the_request_through_the_queue_to_the_worker(
    _isolated_home: Path,
) -> None:
    tokens = make_keys(_isolated_home, {"w": ("acme", "writer", []), "a": ("acme", "admin", [])})
    spans = InMemorySpanExporter()
    telemetry = Telemetry(OtelTracer(spans, service="janus-test", batch=False))
    options = ServerOptions(warm=False, agents_dirs=(str(EXAMPLES / "agents"),))
    app = create_app(load_settings(), options, telemetry=telemetry)
    with TestClient(app) as client:
        started = client.post(
            "/v1/runs",
            json={"spec": CONDENSE, "inputs": {"text": TEXT}},
            headers=bearer(tokens["w"], **{"X-Request-ID": "trace-me-1"}),
        )
        assert started.status_code == 201, started.text
        assert started.headers["x-request-id"] == "trace-me-1"
        run = wait_for_run(
            lambda rid: client.get(f"/v1/runs/{rid}", headers=bearer(tokens["w"])).json(),
            started.json()["id"],
        )
        assert run["status"] == "done", run
        events = client.get(
            "/v1/events", params={"type": "workflow.*"}, headers=bearer(tokens["a"])
        ).json()["events"]
        replaced = client.get("/healthz", headers={"X-Request-ID": "spaces are not sane"})
    assert replaced.headers["x-request-id"] != "spaces are not sane"
    assert len(replaced.headers["x-request-id"]) == 32

    finished = spans.get_finished_spans()
    (request,) = [s for s in finished if s.name == "POST /v1/runs"]
    (enqueue,) = [s for s in finished if s.name == "queue.enqueue workflow.run"]
    (task,) = [s for s in finished if s.name == "queue.run workflow.run"]
    assert request.context is not None and enqueue.context is not None
    assert task.context is not None and task.parent is not None
    assert request.attributes is not None and task.attributes is not None
    assert request.attributes["http.route"] == "/v1/runs"
    assert request.attributes["http.response.status_code"] == 201
    assert task.context.trace_id == enqueue.context.trace_id == request.context.trace_id
    assert task.parent.span_id == enqueue.context.span_id
    assert request.attributes["janus.request_id"] == task.attributes["janus.request_id"]
    assert task.attributes["janus.request_id"] == "trace-me-1"
    assert task.attributes["janus.outcome"] == "done"
    tagged = [s for s in finished if (s.attributes or {}).get("janus.request_id") == "trace-me-1"]
    assert {s.context.trace_id for s in tagged if s.context} == {request.context.trace_id}

    mine = [e for e in events if e["subject"] == f"run:{run['id']}"]
    types = {e["type"] for e in mine}
    assert {"workflow.run.created", "workflow.run.started", "workflow.run.done"} <= types
    assert {e["payload"].get("request_id") for e in mine} == {"trace-me-1"}


# -- OTLP over HTTP to a collector stand-in ----------------------------------------------


def test_spans_reach_an_otlp_collector_over_http(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    collector = Collector()
    home = tmp_path_factory.mktemp("otlp-home")
    (home / "janus.toml").write_text(f'otel_endpoint = "{collector.url}"\n')
    token = make_keys(home, {"a": ("acme", "admin", [])})["a"]
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    server = start_server(home, "--no-warm")
    try:
        answer = httpx.get(
            f"{server.url}/v1/events",
            headers=bearer(
                token,
                **{"X-Request-ID": "otlp-1", "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
            ),
        )
        assert answer.status_code == 200 and answer.headers["x-request-id"] == "otlp-1"
    finally:
        stop_server(server)  # the batch processor flushes on shutdown
        collector.close()
    received = collector.spans()
    assert received, server.log()
    (service, span), *_ = [(n, s) for n, s in received if s.name == "GET /v1/events"]
    assert service == "janus-api"
    assert span.trace_id.hex() == trace_id and span.parent_span_id.hex() == "00f067aa0ba902b7"
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["janus.request_id"].string_value == "otlp-1"
    assert attributes["http.response.status_code"].int_value == 200


# -- /metrics after real work ------------------------------------------------------------


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the tiny llama.cpp model, a price for it, and the condense workflow."""
    pytest.importorskip("llama_cpp", reason="the llm extra (llama-cpp-python) is not installed")
    from janus_stack.slots.llm.tiny_gguf import NAME, write_tiny_gguf  # noqa: PLC0415

    home = tmp_path_factory.mktemp("metrics-home")
    gguf = write_tiny_gguf(home / "tiny.gguf")
    (home / "janus.toml").write_text(
        f'[slots]\nllm = "llamacpp://{gguf}?n_ctx=4096&threads=1&seed=0"\n'
    )
    (home / "prices.toml").write_text(
        f'[models."{NAME}"]\nprompt = 2.0\ncompletion = 4.0\nlocal = true\n'
    )
    (home / "workflows").mkdir()
    (home / "workflows" / "condense.yaml").write_text(CONDENSE)
    tokens = make_keys(
        home, {"w": ("acme", "writer", []), "m": ("acme", "admin", ["metrics:read"])}
    )
    server = start_server(home, "--agents-dir", str(EXAMPLES / "agents"))
    server.keys = {("acme", "writer"): tokens["w"], ("acme", "scraper"): tokens["m"]}
    try:
        yield server
    finally:
        stop_server(server)


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def total(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for have, v in found.get(name, []) if labels.items() <= have.items())


def test_metrics_after_ingest_search_ask_and_runs(model_server: Server) -> None:
    with JanusClient(model_server.url, model_server.key("acme", "writer"), timeout=120) as client:
        assert client.upload(APOLLO, name="apollo.txt")["status"] == "ingested"
        assert client.search("Who commanded Apollo 8?")["hits"]
        assert "answer" in client.ask("Who commanded Apollo 8?")
        for _ in range(2):  # the second run's step is a semantic-cache hit
            run = client.start_run("condense", inputs={"text": TEXT})
            assert wait_for_run(client.get_run, run["id"])["status"] == "done"
    with JanusClient(model_server.url, model_server.key("acme", "scraper")) as scraper:
        found = samples(scraper.metrics())

    for stage in ("index", "entities", "graph"):
        assert total(found, "janus_ingest_stage_runs_total", stage=stage, outcome="ok") >= 1
        assert total(found, "janus_ingest_stage_duration_seconds_count", stage=stage) >= 1
        assert total(found, "janus_ingest_stage_documents_total", stage=stage) >= 1
    assert total(found, "janus_ingest_stage_runs_total", stage="prepare", outcome="ingested") == 1

    assert total(found, "janus_queue_tasks_enqueued_total", task="workflow.run") == 2
    assert total(found, "janus_queue_tasks_total", task="workflow.run", outcome="done") == 2
    assert total(found, "janus_queue_task_duration_seconds_count", task="workflow.run") == 2
    depth = {labels["status"]: v for labels, v in found["janus_queue_depth"]}
    assert set(depth) == {"queued", "running", "retrying", "dead"}
    assert depth["dead"] == 0

    (labels, calls), *others = [
        (labels, v) for labels, v in found["janus_llm_requests_total"] if labels["outcome"] == "ok"
    ]
    assert not others and calls >= 2  # the ask and the first run's agent turn
    assert labels["provider"].startswith("llamacpp:///") and "?" not in labels["provider"]
    assert labels["model"] == "janus-tiny-random"
    for kind in ("prompt", "completion"):
        assert total(found, "janus_llm_tokens_total", kind=kind, model=labels["model"]) > 0
    every_call = total(found, "janus_llm_requests_total", model=labels["model"])
    assert total(found, "janus_llm_request_duration_seconds_count", model=labels["model"]) == (
        every_call
    )
    assert total(found, "janus_llm_time_to_first_token_seconds_count") >= 1
    assert total(found, "janus_llm_cost_usd_total", model=labels["model"]) > 0

    assert total(found, "janus_cache_requests_total", cache="semantic", result="miss") == 1
    assert total(found, "janus_cache_requests_total", cache="semantic", result="hit") == 1
    for mode in ("hybrid", "ask"):
        assert total(found, "janus_retrieval_duration_seconds_count", mode=mode) >= 1
    routes = {labels["route"] for labels, _ in found["janus_http_request_duration_seconds_count"]}
    assert {"/v1/documents", "/v1/search", "/v1/ask", "/v1/runs", "/v1/runs/{run_id}"} <= routes


# -- secrets never logged ----------------------------------------------------------------


def test_no_log_line_holds_a_secret_or_a_token(
    tmp_path_factory: pytest.TempPathFactory, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "pw-" + "Zq8" * 8
    monkeypatch.setenv("OBSERVABILITY_TEST_PG_PASSWORD", password)
    home = tmp_path_factory.mktemp("secrets-home")
    relational = pg_database.replace(
        "postgresql+psycopg://postgres@",
        "postgresql+psycopg://postgres:env:OBSERVABILITY_TEST_PG_PASSWORD@",
    )
    assert relational != pg_database
    (home / "janus.toml").write_text(f'log_level = "debug"\n[slots]\nrelational = "{relational}"\n')
    token = make_keys_on(home, relational)
    server = start_server(home, "--no-warm")
    try:
        with JanusClient(server.url, token) as client:
            assert client.upload(APOLLO, name="apollo.txt")["status"] == "ingested"
            client.search("Apollo", mode="keyword")
        echoed = httpx.get(
            f"{server.url}/v1/documents", headers=bearer(token, **{"X-Request-ID": token})
        )
        assert echoed.status_code == 200 and echoed.headers["x-request-id"] != token
        wrong = token[:-6] + "abcdef"
        refused = httpx.get(f"{server.url}/v1/events", headers=bearer(wrong))
        assert refused.status_code == 401
    finally:
        stop_server(server)
    log = server.log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "http.request"]
    assert len(requests) >= 4, log[-3000:]
    assert all(len(line["request_id"]) == 32 for line in requests)
    secret_part = token.split("_", 2)[2]
    for needle in (password, secret_part, wrong.split("_", 2)[2]):
        assert needle not in log


def make_keys_on(home: Path, relational: str) -> str:
    """A writer key in the ledger at ``relational`` (resolving its secret reference)."""
    settings = load_settings({"relational_url": relational}, cwd=home)
    with Ledger(settings.slot_url("relational")) as ledger:
        migrations.upgrade(ledger)
        return KeyStore(ledger).create(tenant="acme", role="writer")[1]
