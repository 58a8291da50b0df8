"""The FastAPI application: ``create_app(settings, options)``.

The app owns one ``Janus`` context for its lifetime (opened in the lifespan,
closed on shutdown). Routes live in ``routes/``, one module per resource;
authentication and limits in ``auth.py``; the thread boundary in ``guard.py``.
``janus serve`` runs it with uvicorn; tests and benchmarks start that command.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager

from fastapi import FastAPI

from janus_stack import __version__
from janus_stack.api import errors
from janus_stack.api.body_limit import DEFAULT_BODY_BYTES, BodyLimitMiddleware
from janus_stack.api.metrics import Metrics, MetricsMiddleware, metrics_listener
from janus_stack.api.request_context import RequestContextMiddleware
from janus_stack.api.routes import agents, documents, events, keys, memory, ops, runs
from janus_stack.api.state import ApiState, ServerOptions, open_state
from janus_stack.api.workbench import close_workbench
from janus_stack.config import Settings, load_settings
from janus_stack.logs import configure_logging
from janus_stack.telemetry import Telemetry

OPTIONS_ENV = "JANUS_SERVE_OPTIONS"


def create_app(
    settings: Settings, options: ServerOptions | None = None, *, telemetry: Telemetry | None = None
) -> FastAPI:
    """The app; ``telemetry`` (default: from the settings) is handed to the Janus context."""
    chosen = options or ServerOptions()
    observed = telemetry or Telemetry.from_settings(settings, service="janus-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread  # noqa: PLC0415

        with ExitStack() as listening:
            if chosen.metrics_port is not None:  # first: a taken port fails before models load
                listening.enter_context(
                    metrics_listener(observed.registry, chosen.metrics_host, chosen.metrics_port)
                )
            state: ApiState = await anyio.to_thread.run_sync(
                open_state, settings, chosen, metrics, observed
            )
            app.state.janus_api = state
            try:
                yield
            finally:
                # Wait for running Janus calls: the write lock is granted once every reader left.
                await anyio.to_thread.run_sync(close_state, state)

    metrics = Metrics(observed.registry)
    app = FastAPI(
        title="Janus",
        version=__version__,
        summary="Memory for AI agents: documents, search, answers and an audit log.",
        lifespan=lifespan,
    )
    errors.install(app)
    # Innermost: the upload streams under its own limit (uploads.py), every other body under one.
    app.add_middleware(
        BodyLimitMiddleware, default=DEFAULT_BODY_BYTES, routes={("POST", "/v1/documents"): None}
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestContextMiddleware, telemetry=observed)  # outermost
    for module in (ops, documents, memory, events, agents, runs, keys):
        app.include_router(module.router, responses=errors.ERROR_RESPONSES)
    return app


def close_state(state: ApiState) -> None:
    """Pause this process's runs, wait for running calls, close the context (``janus mcp`` too)."""
    if state.work is not None:  # before the lock: a running tool call may hold its read side
        close_workbench(state.work)
    with state.guard.lock.writing():
        state.janus.close()


def app_from_environment() -> FastAPI:
    """The factory uvicorn imports in each worker process (``--workers N``).

    ``janus serve`` passes the CLI's overrides and options through the
    environment variable ``JANUS_SERVE_OPTIONS`` (JSON).
    """
    raw = json.loads(os.environ.get(OPTIONS_ENV, "{}"))
    settings = load_settings(raw.get("overrides") or {})
    configure_logging(settings.log_level, settings.secrets())
    return create_app(settings, ServerOptions(**(raw.get("options") or {})))
