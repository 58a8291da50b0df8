"""Runs on a server: started and steered through the SDK, followed over server-sent events.

The server executes the run (its own queue workers or a ``janus worker``);
following it here only reads the stream, so leaving early leaves the run
going. A workflow given as a local file is posted as the spec; anything else
is a workflow name the server finds in its own workflow folders.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from janus_stack.cli._backend import Update
from janus_stack.client import JanusClient
from janus_stack.errors import InvalidInputError

RUN_PAGE = 200
# Audit events of a run's steps → the step status a local follower reads from the ledger.
_STEP_STATUS = {
    "workflow.step.started": "running",
    "workflow.step.done": "done",
    "workflow.step.failed": "failed",
    "workflow.step.budget_exceeded": "budget_exceeded",
    "workflow.step.waiting": "waiting",
}


def refuse(flag: str, given: bool, why: str) -> None:
    """A flag that names something of this machine cannot steer a server."""
    if given:
        raise InvalidInputError(
            f"{flag} cannot be used with --server: {why}",
            hint="drop it, or run the command without --server",
        )


def _step(event: dict[str, Any], kinds: dict[str, str]) -> Update | None:
    status = _STEP_STATUS.get(str(event.get("type")))
    payload = event.get("payload") or {}
    key = payload.get("step")
    if status is None or not isinstance(key, str):
        return None
    if "kind" in payload:
        kinds[key] = str(payload["kind"])
    return Update(
        "step",
        {"key": key, "status": status, "kind": kinds.get(key, ""), "agent": None,
         "latency_s": float(payload.get("latency_s", 0.0))},
    )  # fmt: skip


class RemoteRuns:
    """:class:`~janus_stack.cli._backend.Runs` on a server."""

    def __init__(self, client: JanusClient) -> None:
        self.client = client

    def start(
        self, workflow: str, inputs: dict[str, Any], *, tenant: str | None, agents_dir: list[Path]
    ) -> dict[str, Any]:
        refuse("--agents-dir", bool(agents_dir), "the server reads its own agent folders")
        path = Path(workflow).expanduser()
        if path.is_file():
            spec = path.read_text(encoding="utf-8")
            return self.client.start_run(spec=spec, inputs=inputs, tenant=tenant)
        return self.client.start_run(workflow, inputs=inputs, tenant=tenant)

    def follow(self, run_id: str) -> Iterator[Update]:
        kinds: dict[str, str] = {}
        for event in self.client.stream_run(run_id):
            if event.kind == "event":
                step = _step(event.data, kinds)
                if step is not None:
                    yield step
            elif event.kind == "token":
                yield Update("token", event.data["text"])
            elif event.kind == "end":
                yield Update("end", event.data)

    def list_runs(
        self, *, tenant: str | None, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None and len(found) < limit:
            page = self.client.list_runs(
                status=status, limit=min(limit - len(found), RUN_PAGE), offset=offset,
                tenant=tenant,
            )  # fmt: skip
            found.extend(page["runs"])
            offset = page["next_offset"]
        return found[:limit]

    def show(self, run_id: str) -> dict[str, Any]:
        return self.client.get_run(run_id)

    def steer(self, run_id: str, action: str) -> dict[str, Any]:
        if action == "pause":
            return self.client.pause_run(run_id)
        return self.client.cancel_run(run_id)

    def feedback(self, run_id: str, text: str) -> dict[str, Any]:
        run: dict[str, Any] = self.client.run_feedback(run_id, text)["run"]
        return run

    def resume(
        self, run_id: str, *, agents_dir: list[Path], rerun_interrupted: bool = False
    ) -> dict[str, Any]:
        refuse("--agents-dir", bool(agents_dir), "the server reads its own agent folders")
        return self.client.resume_run(run_id, rerun_interrupted=rerun_interrupted)
