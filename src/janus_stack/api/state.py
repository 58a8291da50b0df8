"""What one server process holds for its lifetime: the Janus context and its helpers.

The server owns its ``Janus`` context from start-up to shutdown (and with
embedded stores the JANUS_HOME lock with it). Start-up opens every slot the
routes use *before* the first request, because the context opens slots
lazily and that lazy path is not meant to race between threads; it also
loads the embedding model and spaCy so the first search is not the slow one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import HTTPConnection

from janus_stack.api.guard import Guard, LockedExtractor
from janus_stack.api.keys import KeyRecord, KeyStore
from janus_stack.api.metrics import Metrics
from janus_stack.api.sources import Sources
from janus_stack.api.workbench import Workbench, open_workbench
from janus_stack.config import Settings
from janus_stack.context import Janus
from janus_stack.errors import ConfigError
from janus_stack.ingest.enqueue import ensure_ingest_tasks, queued_mode
from janus_stack.ingest.pipeline import IngestOptions, Ingestor
from janus_stack.ingest.spacy_extractor import SpacyEntityExtractor
from janus_stack.retrieve.answer import Answerer
from janus_stack.retrieve.search import Retriever
from janus_stack.slots.queue.tasks import TaskStore
from janus_stack.telemetry import Telemetry

log = logging.getLogger("janus.api")

MiB = 1024 * 1024
METRICS_AUTH = ("key", "open", "off")


@dataclass(frozen=True)
class ServerOptions:
    """Limits and knobs of ``janus serve``.

    Attributes:
        max_upload_bytes: a larger upload is refused with 413.
        key_rate, key_burst: token bucket per API key (requests/s, burst).
        tenant_rate, tenant_burst: token bucket per tenant, over all its keys.
        threads: Janus calls running at once on worker threads.
        key_cache_seconds: how long a verified key is trusted without a ledger
            read (a revocation takes effect within this time).
        warm: open every slot and load the models at start-up.
        agents_dirs: agent manifest directories besides JANUS_HOME/agents and
            JANUS_AGENTS_PATH (``janus serve --agents-dir``).
        workflows_dirs: where ``POST /v1/runs`` finds workflows by name, besides
            JANUS_HOME/workflows (``janus serve --workflows-dir``).
        metrics_auth: who may read ``/metrics`` on the API's port (one of
            :data:`METRICS_AUTH`): ``key`` (the default) asks for an API key
            granting ``metrics:read``, as Prometheus sends with
            ``authorization: {credentials_file: ...}``; ``open`` asks for
            nothing, for a server reachable only by its scraper; ``off``
            serves it only on ``metrics_port``. The default is ``key`` because
            the metrics describe every tenant's traffic, routes, models and
            costs, and ``janus serve`` may well face a network; a key costs a
            scraper one line of configuration.
        metrics_port: also serve ``/metrics``, without a key, on this port of
            ``metrics_host`` (default 127.0.0.1): the bind is the protection,
            as for ``janus worker --metrics-port``. None: no such listener.
    """

    max_upload_bytes: int = 100 * MiB
    key_rate: float = 50.0
    key_burst: int = 100
    tenant_rate: float = 200.0
    tenant_burst: int = 400
    threads: int = 8
    key_cache_seconds: float = 2.0
    warm: bool = True
    ready_cache_seconds: float = 5.0
    agents_dirs: tuple[str, ...] = ()
    workflows_dirs: tuple[str, ...] = ()
    metrics_auth: str = "key"
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if self.metrics_auth not in METRICS_AUTH:
            raise ConfigError(
                f"metrics_auth {self.metrics_auth!r} is not one of {', '.join(METRICS_AUTH)}"
            )
        if self.metrics_auth == "off" and self.metrics_port is None:
            raise ConfigError(
                "metrics_auth 'off' leaves /metrics nowhere",
                hint="give --metrics-port as well, or choose 'key'",
            )


@dataclass
class ApiState:
    settings: Settings
    options: ServerOptions
    janus: Janus
    guard: Guard
    metrics: Metrics
    keys: KeyStore
    retriever: Retriever
    entity_extractor: SpacyEntityExtractor
    started_at: float = field(default_factory=time.time)
    key_cache: dict[str, tuple[float, KeyRecord | None]] = field(default_factory=dict)
    readiness: tuple[float, list[dict[str, Any]]] | None = None
    work: Workbench | None = None

    @property
    def workbench(self) -> Workbench:
        assert self.work is not None, "the workbench opens with the state"
        return self.work

    def answerer(self, *, k: int = 8, rounds: int = 2) -> Answerer:
        """An answerer for one request over the shared retriever.

        The retriever is shared so its entity linker's per-tenant name index
        (cached for a minute) serves every request; its only per-search
        state, ``last_entities``, is informational and not read here.
        """
        return Answerer(self.janus, retriever=self.retriever, k=k, max_rounds=rounds)

    @property
    def uploads_dir(self) -> Path:
        return self.settings.home / "uploads"

    def sources(self, tenant: str) -> Sources:
        """How ``tenant``'s document sources look to a client (see :mod:`.sources`)."""
        return Sources((self.uploads_dir / tenant).resolve())

    def ingestor(self, *, entities: bool = True) -> Ingestor:
        """An ingestor sharing the process's spaCy pipeline (loading it costs ~1 s)."""
        options = IngestOptions(entities=entities, max_bytes=self.options.max_upload_bytes)
        tasks = None
        if queued_mode(self.janus):
            from janus_stack.ingest.enqueue import ProjectionQueue  # noqa: PLC0415

            tasks = ProjectionQueue(self.janus, entities=entities)
        ingestor = Ingestor(self.janus, self.janus.embedder, options, projection_queue=tasks)
        if entities:
            ingestor.projector.extractor = self.entity_extractor
        return ingestor


def open_state(
    settings: Settings, options: ServerOptions, metrics: Metrics, telemetry: Telemetry
) -> ApiState:
    """Open the context (and, with ``warm``, every slot and model) for a server process."""
    janus = Janus(settings, telemetry=telemetry)
    try:
        ledger = janus.ledger
        metrics.event_log.set_function(lambda: _event_log_length(janus))
        telemetry.watch_queue(TaskStore(ledger).depth)
        extractor = SpacyEntityExtractor()
        query_extractor = LockedExtractor(SpacyEntityExtractor(relations=False))
        state = ApiState(
            settings=settings,
            options=options,
            janus=janus,
            guard=Guard(options.threads),
            metrics=metrics,
            keys=KeyStore(ledger),
            retriever=Retriever(janus, extractor=query_extractor),
            entity_extractor=extractor,
        )
        if queued_mode(janus):
            ensure_ingest_tasks(janus)
        for slot in ("objects", "cache", "embedder", "vectors", "graph", "llm"):
            getattr(janus, slot)
        if queued_mode(janus):
            janus.queue  # noqa: B018 - opens the broker connection now, not on first upload
        if options.warm:
            janus.embedder.embed(["warm-up"])
            extractor.load()
            inner = query_extractor.inner
            assert isinstance(inner, SpacyEntityExtractor)
            inner.load()
        resumed = state.ingestor().resume()
        if resumed:
            log.info("finished %d document versions an earlier run left unfinished", resumed)
        state.work = open_workbench(
            janus,
            state.guard.lock,
            agents_dirs=tuple(options.agents_dirs),
            workflows_dirs=tuple(options.workflows_dirs),
        )
    except BaseException:
        janus.close()
        raise
    return state


def _event_log_length(janus: Janus) -> float:
    head = janus.events.head()
    return 0.0 if head is None else float(head.seq)


def api_state(request: HTTPConnection) -> ApiState:
    state = request.app.state.janus_api
    assert isinstance(state, ApiState)
    return state
