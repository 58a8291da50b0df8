"""``janus worker``: run queued tasks (ingestion stages, workflow runs) until SIGINT/SIGTERM.

A worker needs a broker queue (``amqp://``): with the in-process default
(``inline://``) ``janus ingest`` runs every stage itself, so there is
nothing for a worker to take, and a worker would only hold JANUS_HOME
against it. It then exits 1 with a message saying so, rather than idling.

Start-up opens every store before taking work: the JANUS_HOME lock (when the
vector index or graph is embedded; a second worker or an inline ``janus
ingest`` then names this process as the owner), the embedding model and the
broker. Workflow runs a killed process (a ``janus run``, a server or another
worker) left ``running`` are then queued again at once, as ``janus runs
resume`` would, so they continue from their last finished step; a run whose
owner is still alive is left to it. Other tasks a killed worker left running
are recovered when their leases run out. On SIGINT/SIGTERM the worker stops
taking messages, lets running tasks finish (up to ``--grace`` seconds; an
unfinished one is re-run by the next worker), closes every store and exits 0.

``--metrics-port`` serves the worker's Prometheus metrics (task outcomes,
queue depth, ingest stages, model calls) at ``/metrics`` on that port
(``--metrics-host``, default 127.0.0.1); with ``otel_endpoint`` set, the
tasks' spans continue the traces of the requests that queued them.

``--json`` prints one JSON object per line: ``started`` (with the ids of the
runs it resumed, ``resumed_runs``) and ``stopped``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from types import FrameType
from typing import Annotated, Any

import typer
from prometheus_client import start_http_server

from janus_stack.cli._common import JsonFlag, state, stderr
from janus_stack.cli._local_runs import workflow_runs
from janus_stack.cli.agents import AgentsDirOption
from janus_stack.context import Janus
from janus_stack.errors import ConfigError
from janus_stack.ingest.tasks import locks_are_shared, register_ingest_tasks
from janus_stack.slots.queue import TaskHandlers
from janus_stack.slots.queue.tasks import TaskStore
from janus_stack.telemetry import Telemetry

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def worker(
    ctx: typer.Context,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Worker threads (default: the queue URL's)."),
    ] = None,
    agents_dir: AgentsDirOption = None,
    grace: Annotated[
        float,
        typer.Option("--grace", min=0, help="Seconds running tasks get to finish on stop."),
    ] = 30.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port", min=0, max=65535, help="Serve Prometheus /metrics on this port."
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Interface for --metrics-port.")
    ] = "127.0.0.1",
    as_json: JsonFlag = False,
) -> None:
    """Run queued ingestion and workflow tasks until SIGINT or SIGTERM (needs a broker queue)."""
    settings = state(ctx).settings()
    queue_url = settings.slot_url("queue")
    if queue_url.scheme == "inline":
        raise ConfigError(
            "janus worker needs a broker queue, but the queue slot is inline://, whose "
            "tasks run inside `janus ingest` itself: there is nothing for a worker to do",
            hint='set queue = "amqp://user:pass@host:5672/" in janus.toml (or '
            "JANUS_QUEUE_URL / --queue-url) for both `janus ingest` and `janus worker`",
        )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    handlers = TaskHandlers()
    telemetry = Telemetry.from_settings(settings, service="janus-worker")
    try:
        with Janus(settings, handlers, telemetry=telemetry) as janus:
            tasks = register_ingest_tasks(handlers, janus)
            runs = workflow_runs(janus, settings, agents_dir)
            tasks.warm_up()
            queue = janus.queue
            shared = locks_are_shared(janus)
            exporter = None
            if metrics_port is not None:
                telemetry.watch_queue(TaskStore(janus.ledger).depth)
                exporter, _thread = start_http_server(
                    metrics_port, addr=metrics_host, registry=telemetry.registry
                )
            if not stop.is_set():
                resumed = [run.id for run in runs.recover()]
                queue.start(workers)
                _announce(
                    as_json,
                    "started",
                    {
                        "pid": os.getpid(),
                        "queue": queue_url.redacted,
                        "backend": queue.backend,
                        "workers": queue.workers if workers is None else workers,
                        "tasks": handlers.names(),
                        "home_lock": janus.home_lock.held,
                        "locks_shared": shared,
                        "resumed_runs": resumed,
                        "metrics": None
                        if exporter is None
                        else f"http://{metrics_host}:{exporter.server_port}/metrics",
                    },
                )
                if not shared:
                    stderr().print(
                        "[yellow]warning:[/] the cache slot is memory://, so document locks "
                        "bind this process only; run one worker process per deployment, or "
                        "give every worker the same redis:// cache",
                    )
                while not stop.wait(0.5):
                    pass
                queue.stop(timeout=grace)
            if exporter is not None:
                exporter.shutdown()
                exporter.server_close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _announce(as_json, "stopped", {"pid": os.getpid()})


def _announce(as_json: bool, status: str, details: dict[str, Any]) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"status": status, **details}) + "\n")
        sys.stdout.flush()
        return
    if status == "started":
        stderr().print(
            f"janus worker {details['pid']}: {details['workers']} threads on the "
            f"{details['backend']} queue at {details['queue']}; tasks: "
            f"{', '.join(details['tasks'])}"
            + (f"; metrics at {details['metrics']}" if details["metrics"] else "")
            + (
                f"; resumed {len(details['resumed_runs'])} interrupted run(s)"
                if details["resumed_runs"]
                else ""
            )
            + ". Ctrl-C stops."
        )
    else:
        stderr().print(f"janus worker {details['pid']}: stopped")
