"""Runs on this machine: the run service over JANUS_HOME, executed and followed here.

With the in-process queue (``inline://``) a followed run executes on this
process's worker threads; with a broker queue a ``janus worker`` executes it
and following only reads the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from janus_stack.cli._backend import Update
from janus_stack.cli._home import LocalHome
from janus_stack.cli.agents import workbench
from janus_stack.config import Settings
from janus_stack.context import Janus
from janus_stack.workflows.checks import validate_file
from janus_stack.workflows.runs import Runs, home_runs
from janus_stack.workflows.spec import find_workflow
from janus_stack.workflows.store import QUEUED, RUNNING, RunStore

POLL_SECONDS = 0.1
MAX_TOKENS = 100_000  # streamed pieces joined into a run's text


def workflow_runs(janus: Janus, settings: Settings, agents_dir: list[Path] | None) -> Runs:
    """The run service, its task registered on ``janus.handlers`` (``janus worker`` too)."""
    registry, toolbox = workbench(settings, agents_dir)
    return home_runs(janus, registry, toolbox)


class LocalRuns:
    """:class:`~janus_stack.cli._backend.Runs` over this machine's JANUS_HOME."""

    def __init__(self, home: LocalHome) -> None:
        self.home = home
        self._service: Runs | None = None

    def _runs(self, agents_dir: list[Path]) -> Runs:
        """One run service per command: a run is followed by the service that started it."""
        if self._service is None:
            self._service = workflow_runs(self.home.janus, self.home.settings, agents_dir)
        return self._service

    @property
    def _store(self) -> RunStore:
        return RunStore(self.home.janus.ledger)

    def start(
        self, workflow: str, inputs: dict[str, Any], *, tenant: str | None, agents_dir: list[Path]
    ) -> dict[str, Any]:
        settings = self.home.settings
        registry, toolbox = workbench(settings, agents_dir)
        spec = validate_file(find_workflow(workflow, settings.home), registry, toolbox)
        runs = self._runs(agents_dir)
        run_id = runs.start(spec, inputs, tenant=tenant or settings.tenant)
        return runs.store.run(run_id).as_dict()

    def follow(self, run_id: str) -> Iterator[Update]:
        janus = self.home.janus
        store = self._runs([]).store
        inline = janus.settings.slot_url("queue").scheme == "inline"
        if inline:
            janus.queue.start(1)
        seen: dict[str, str] = {}
        last_token = 0
        try:
            while True:
                run = store.run(run_id)
                for key, step in store.steps(run_id).items():
                    if seen.get(key) != step.status:
                        seen[key] = step.status
                        yield Update(
                            "step",
                            {"key": key, "status": step.status, "kind": step.kind,
                             "agent": step.agent, "latency_s": step.latency_s},
                        )  # fmt: skip
                for token_id, _key, text in store.tokens(run_id, last_token):
                    last_token = token_id
                    yield Update("token", text)
                if run.status not in (QUEUED, RUNNING):
                    break
                time.sleep(POLL_SECONDS)
        finally:
            if inline:
                janus.queue.stop()
        yield Update("end", store.detail(store.run(run_id)))

    def list_runs(
        self, *, tenant: str | None, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self._store.runs(tenant=tenant, status=status, limit=limit)]

    def show(self, run_id: str) -> dict[str, Any]:
        store = self._store
        record = store.find(run_id)
        data = store.detail(record)
        data["tokens"] = "".join(t for _i, _k, t in store.tokens(record.id, 0, MAX_TOKENS))
        return data

    def steer(self, run_id: str, action: str) -> dict[str, Any]:
        runs = self._runs([])
        record = runs.pause(run_id) if action == "pause" else runs.cancel(run_id)
        return record.as_dict()

    def feedback(self, run_id: str, text: str) -> dict[str, Any]:
        return self._runs([]).feedback(run_id, text).as_dict()

    def resume(
        self, run_id: str, *, agents_dir: list[Path], rerun_interrupted: bool = False
    ) -> dict[str, Any]:
        runs = self._runs(agents_dir)
        return runs.resume(run_id, rerun_interrupted=rerun_interrupted).as_dict()
