"""The metric families the core records, in the registry of one process's Telemetry.

Names and labels (``deploy/observability/`` charts exactly these):

* ``janus_ingest_stage_duration_seconds{stage}`` histogram and
  ``janus_ingest_stage_runs_total{stage,outcome}``,
  ``janus_ingest_stage_documents_total{stage}`` counters. Stages: ``prepare``
  (read, store the object, extract, chunk; once per file, outcome
  ``ingested``/``unchanged``/``failed``), then per batch of versions
  ``index`` (embed and upsert points), ``entities``, ``graph`` (outcome
  ``ok``/``error``).
* ``janus_queue_tasks_enqueued_total{task}``, ``janus_queue_tasks_total{task,outcome}``
  (``done``, ``retry``, ``dead``, ``superseded`` when another worker took
  the task over, ``unsettled`` when the outcome could not be recorded) and
  ``janus_queue_task_duration_seconds{task}``.
* ``janus_queue_depth{status}`` gauge (queued, running, retrying, dead),
  read from the ledger at scrape time by :class:`QueueDepthCollector`.
* ``janus_llm_requests_total{provider,model,outcome}``,
  ``janus_llm_tokens_total{provider,model,kind}`` (prompt, completion),
  ``janus_llm_cost_usd_total{provider,model}`` (the price table's cost of
  agent calls), ``janus_llm_request_duration_seconds{provider,model}`` and
  ``janus_llm_time_to_first_token_seconds{provider,model}``. ``provider`` is
  the redacted slot URL without its query.
* ``janus_cache_requests_total{cache,result}``: ``cache`` is ``semantic`` (agent
  steps) or ``slot`` (cache slot reads), ``result`` ``hit``/``miss``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TASK_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
LLM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
DEPTH_STATUSES = ("queued", "running", "retrying", "dead")

log = logging.getLogger(__name__)


class CoreMetrics:
    """Every family of the module docstring, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.stage_seconds = Histogram(
            "janus_ingest_stage_duration_seconds",
            "Time spent in one run of an ingestion stage",
            ("stage",),
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.stage_runs = Counter(
            "janus_ingest_stage_runs_total",
            "Runs of an ingestion stage by outcome",
            ("stage", "outcome"),
            registry=registry,
        )
        self.stage_documents = Counter(
            "janus_ingest_stage_documents_total",
            "Documents through an ingestion stage (extracted by prepare, versions after)",
            ("stage",),
            registry=registry,
        )
        self.enqueued = Counter(
            "janus_queue_tasks_enqueued_total",
            "Tasks recorded in the queue (idempotent repeats excluded)",
            ("task",),
            registry=registry,
        )
        self.tasks = Counter(
            "janus_queue_tasks_total",
            "Task attempts run by this process, by outcome",
            ("task", "outcome"),
            registry=registry,
        )
        self.task_seconds = Histogram(
            "janus_queue_task_duration_seconds",
            "Time a task attempt ran in its handler",
            ("task",),
            buckets=TASK_BUCKETS,
            registry=registry,
        )
        self.llm_requests = Counter(
            "janus_llm_requests_total",
            "Language model calls by outcome (ok, error)",
            ("provider", "model", "outcome"),
            registry=registry,
        )
        self.llm_tokens = Counter(
            "janus_llm_tokens_total",
            "Tokens of language model calls (kind: prompt, completion)",
            ("provider", "model", "kind"),
            registry=registry,
        )
        self.llm_cost = Counter(
            "janus_llm_cost_usd",
            "Cost of agent model calls in USD by the price table",
            ("provider", "model"),
            registry=registry,
        )
        self.llm_seconds = Histogram(
            "janus_llm_request_duration_seconds",
            "Language model call latency, first byte sent to last token",
            ("provider", "model"),
            buckets=LLM_BUCKETS,
            registry=registry,
        )
        self.llm_ttft = Histogram(
            "janus_llm_time_to_first_token_seconds",
            "Time to the first streamed token of a language model call",
            ("provider", "model"),
            buckets=LLM_BUCKETS,
            registry=registry,
        )
        self.cache = Counter(
            "janus_cache_requests_total",
            "Cache lookups by cache and result (hit, miss)",
            ("cache", "result"),
            registry=registry,
        )


class QueueDepthCollector(Collector):
    """``janus_queue_depth{status}``, counted from the ledger when Prometheus scrapes.

    A failing count (the database is down) yields no sample instead of
    failing the scrape, so the other metrics still arrive.
    """

    def __init__(self, count: Callable[[], Mapping[str, int]]) -> None:
        self._count = count

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        try:
            counts = self._count()
        except Exception:
            log.warning("janus_queue_depth: could not count tasks", exc_info=True)
            return
        for status in DEPTH_STATUSES:
            family.add_metric([status], float(counts.get(status, 0)))
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "janus_queue_depth", "Tasks in the ledger by status", labels=("status",)
        )
