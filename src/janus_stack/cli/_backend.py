"""One interface for the data commands, served from this machine's JANUS_HOME or a server.

A data command (ingest, search, ask, docs, audit, agents, workflows, runs,
keys) checks its flags, opens a :class:`Backend` with :func:`open_backend`
and renders what comes back. Without ``--server`` that is
:class:`~janus_stack.cli._local.LocalBackend`, which opens JANUS_HOME; with
it, :class:`~janus_stack.cli._remote.RemoteBackend`, which calls the server
through :class:`~janus_stack.client.JanusClient`. Both return the same plain
data, which *is* the command's ``--json`` output and what its table is drawn
from, so the two modes cannot drift apart in what they show.

Where a server does not disclose a value (its own paths, object keys, the
folders it reads agents from) the remote result holds ``null`` under the same
key. A flag that names something only this machine has (``--agents-dir``,
``--weight``) is refused in remote mode with a message naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import typer

from janus_stack.cli._common import state
from janus_stack.retrieve import Filters
from janus_stack.retrieve.types import Mode


@dataclass(frozen=True)
class Update:
    """One step of a streamed answer or a followed run.

    An answer gives ``retrieval`` (evidence summary), ``token`` (text),
    ``fallback`` (the model failed; data names why) and last ``answer``.
    A run gives ``step`` (``key``, ``status``, ``kind``, ``agent``,
    ``latency_s``) whenever a step changes, ``token`` (text) and last ``end``
    (the run with its steps, tool calls and feedback).
    """

    kind: str
    data: Any


@dataclass(frozen=True)
class IngestRequest:
    files: list[Path]
    tenant: str | None
    tags: dict[str, str]
    entities: bool
    extractor: str
    resume: bool
    limit: int | None
    wait: bool
    quiet: bool


@dataclass(frozen=True)
class EventQuery:
    type: str | None
    actor: str | None
    subject: str | None
    tenant: str | None
    since: datetime | None
    until: datetime | None
    after: int | None
    limit: int


class Runs(Protocol):
    """Durable workflow runs: start, follow, list, show and steer."""

    def start(
        self, workflow: str, inputs: dict[str, Any], *, tenant: str | None, agents_dir: list[Path]
    ) -> dict[str, Any]:
        """Start a run of a workflow file (or a name where the runs execute); its record."""

    def follow(self, run_id: str) -> Iterator[Update]:
        """``step`` and ``token`` updates until the run stops, then ``end``."""

    def list_runs(
        self, *, tenant: str | None, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Runs, newest first."""

    def show(self, run_id: str) -> dict[str, Any]:
        """A run with its steps, tool calls, feedback and streamed text (``tokens``)."""

    def steer(self, run_id: str, action: str) -> dict[str, Any]:
        """``pause`` or ``cancel``; the run's record after the request."""

    def feedback(self, run_id: str, text: str) -> dict[str, Any]:
        """Answer the step a run waits for (or leave a note); the run's record."""

    def resume(
        self, run_id: str, *, agents_dir: list[Path], rerun_interrupted: bool = False
    ) -> dict[str, Any]:
        """Queue a paused, failed or interrupted run again; its record (follow it next).

        ``rerun_interrupted``: let the calls a crash interrupted (tools that are
        not idempotent) run again."""


class Backend(Protocol):
    """Everything the data commands read or change, with one result shape per command."""

    @property
    def runs(self) -> Runs: ...

    def ingest(self, request: IngestRequest) -> dict[str, Any]:
        """``files``, ``summary``, ``resumed_versions`` (and ``queue`` with a broker)."""

    def delete(self, target: str, *, tenant: str | None) -> list[dict[str, Any]]:
        """Delete a document given by ID or by the file it came from; one report per document."""

    def documents(
        self, *, tenant: str | None, status: str | None, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        """Document rows: id, name, title, source, sub_id, status, version, doc_id, chunks."""

    def document(self, document_id: str, *, tenant: str | None) -> dict[str, Any]:
        """One document with its versions and their stages."""

    def search(
        self,
        query: str,
        *,
        mode: Mode,
        k: int,
        tenant: str | None,
        filters: Filters,
        weights: list[str],
        hops: int | None,
    ) -> dict[str, Any]:
        """Hits with the query, mode, tenant, filters, weights, linked entities and time."""

    def ask(
        self, question: str, *, tenant: str | None, filters: Filters, k: int, rounds: int
    ) -> Iterator[Update]:
        """The answer as it is made: ``retrieval``, ``token``..., ``answer``."""

    def memory(self, topic: str, *, tenant: str | None, filters: Filters, k: int) -> dict[str, Any]:
        """Everything the memory holds about a topic."""

    def events(self, query: EventQuery) -> list[dict[str, Any]]:
        """Audit events, oldest first."""

    def verify_events(self) -> dict[str, Any]:
        """The hash chain's verification report."""

    def agents(self, agents_dir: list[Path]) -> dict[str, Any]:
        """``directories``, ``agents``, ``invalid``, ``tools``, ``tool_plugin_problems``."""

    def agent(self, name: str, agents_dir: list[Path]) -> dict[str, Any]:
        """One agent's whole manifest."""

    def workflows(self, workflows_dir: list[Path], agents_dir: list[Path]) -> dict[str, Any]:
        """``directories`` and ``workflows`` (each with its inputs, steps and problems)."""

    def create_key(self, *, tenant: str, role: str, scopes: list[str], name: str) -> dict[str, Any]:
        """A new API key's record with its ``token`` (the only time it is shown)."""

    def keys(self, *, tenant: str | None, revoked: bool) -> list[dict[str, Any]]:
        """API keys of a tenant, or of every tenant (never a token or hash)."""

    def revoke_key(self, key: str, *, tenant: str | None) -> dict[str, Any]:
        """Revoke a key by ID or prefix; its record."""


@contextmanager
def open_backend(ctx: typer.Context) -> Iterator[Backend]:
    """The remote backend when ``--server`` is set, else the local one; closed on leaving."""
    cli = state(ctx)
    if cli.server is None:
        from janus_stack.cli._local import LocalBackend  # noqa: PLC0415 - opens stores

        with LocalBackend(cli) as local:
            yield local
        return
    from janus_stack.cli._remote import RemoteBackend  # noqa: PLC0415 - imports httpx

    with RemoteBackend.connect(cli.server, cli.api_key) as remote:
        yield remote
