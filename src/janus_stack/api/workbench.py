"""What the server needs for agents and workflow runs: registry, toolbox, run service.

Runs execute through the queue slot exactly as ``janus run`` does: with the
in-process queue (``inline://``) the server starts its own queue workers at
start-up and they execute the ``workflow.run`` tasks; with a broker queue an
external ``janus worker`` does, and the server only enqueues and reads the
ledger. Either way a client that stops following a run changes nothing: the
run belongs to the queue, not to the connection.

Tools called by runs in this process share the context with the routes, so
each call takes the guard's lock: the read side for tools that read memory,
the write side for tools that write it (like an upload), none for tools that
touch no memory (``agents.call``, whose inner calls lock for themselves).
At shutdown every run this process executes is asked to pause at its next
step boundary before the queue stops; it stays resumable.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from janus_stack.agents.registry import AgentRegistry, agent_directories
from janus_stack.agents.sourcefile import SpecError, parse_text
from janus_stack.agents.tools import Access, Tool, Toolbox, ToolContext
from janus_stack.api.guard import ReadWriteLock
from janus_stack.context import Janus
from janus_stack.errors import InvalidInputError, JanusError, NotFoundError
from janus_stack.ingest.enqueue import queued_mode
from janus_stack.workflows.catalog import WORKFLOW_SUFFIXES, workflow_files
from janus_stack.workflows.checks import check_workflow
from janus_stack.workflows.runs import Runs, home_runs
from janus_stack.workflows.spec import WorkflowSpec, load_workflow
from janus_stack.workflows.store import RUNNING

log = logging.getLogger("janus.api")

SHUTDOWN_GRACE_SECONDS = 20.0
_held = threading.local()
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class GuardedTool:
    """A tool whose calls hold the server's context lock (read, or write for memory writes)."""

    def __init__(self, inner: Tool, lock: ReadWriteLock) -> None:
        self.inner = inner
        self.lock = lock

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def description(self) -> str:
        return self.inner.description

    @property
    def parameters(self) -> Mapping[str, Any]:
        return self.inner.parameters

    @property
    def access(self) -> Access:
        return self.inner.access

    def __getattr__(self, name: str) -> Any:  # e.g. ``tenant_of``
        return getattr(self.inner, name)

    def call(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        # A tool that touches no memory (agents.call) takes no lock; a tool called from
        # inside another guarded call on this thread runs under the outer call's lock
        # (re-taking it could deadlock behind a waiting writer).
        if self.inner.access == "none" or int(getattr(_held, "depth", 0)) > 0:
            return self._call(context, arguments)
        mode = self.lock.writing if self.inner.access == "write" else self.lock.reading
        with mode():
            return self._call(context, arguments)

    def _call(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        depth = int(getattr(_held, "depth", 0))
        _held.depth = depth + (0 if self.inner.access == "none" else 1)
        try:
            return self.inner.call(context, arguments)
        finally:
            _held.depth = depth


@dataclass
class Workbench:
    registry: AgentRegistry
    toolbox: Toolbox
    runs: Runs
    workflow_dirs: list[Path]
    inline: bool

    def workflow(self, name: str) -> WorkflowSpec:
        """A workflow by name from the workflow directories (never a path), checked."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInputError(
                f"workflow {name!r}: give a workflow name (letters, digits, '.', '_', '-'), "
                "or post the spec itself"
            )
        for directory in self.workflow_dirs:
            for suffix in WORKFLOW_SUFFIXES:
                path = directory / f"{name}{suffix}"
                if path.is_file():
                    return self._checked_file(path)
        for path in workflow_files(self.workflow_dirs):  # a file whose spec carries that name
            try:
                _source, spec = load_workflow(path)
            except SpecError:
                continue
            if spec.name == name:
                return self._checked_file(path)
        where = ", ".join(str(d) for d in self.workflow_dirs) or "no directory"
        raise NotFoundError(
            f"no workflow named {name!r} in {where}",
            hint="add the file there (janus serve --workflows-dir), or post the spec",
        )

    def _checked_file(self, path: Path) -> WorkflowSpec:
        source, spec = load_workflow(path)
        problems = check_workflow(source, spec, self.registry, self.toolbox)
        if problems:
            raise SpecError(problems)
        return spec

    def parse_workflow(self, text: str, label: str = "<request>") -> WorkflowSpec:
        """A posted workflow (YAML or JSON text), checked; SpecError names every problem."""
        source = parse_text(text, label)
        spec = source.validate(WorkflowSpec)
        problems = check_workflow(source, spec, self.registry, self.toolbox)
        if problems:
            raise SpecError(problems)
        return spec

    def pause_own_runs(self) -> int:
        """Ask every run this process executes to pause at its next step boundary."""
        owner = self.runs.engine.owner
        paused = 0
        for record in self.runs.store.runs(status=RUNNING, limit=10_000):
            if record.owner != owner:
                continue
            try:
                self.runs.pause(record.id, actor="api")
                paused += 1
            except JanusError:
                log.warning("could not pause run %s at shutdown", record.id, exc_info=True)
        return paused


def guarded_toolbox(lock: ReadWriteLock) -> Toolbox:
    base = Toolbox.default()
    box = Toolbox(GuardedTool(base.get(name), lock) for name in base.names())
    box.problems.extend(base.problems)
    return box


def open_workbench(
    janus: Janus,
    lock: ReadWriteLock,
    *,
    agents_dirs: tuple[str, ...] = (),
    workflows_dirs: tuple[str, ...] = (),
) -> Workbench:
    """Build the run service, register its task and, with ``inline://``, start the workers."""
    settings = janus.settings
    toolbox = guarded_toolbox(lock)
    registry = AgentRegistry(
        agent_directories(settings.home, [Path(d) for d in agents_dirs]), toolbox
    )
    runs = home_runs(janus, registry, toolbox)
    inline = not queued_mode(janus)
    if inline:
        janus.queue.start()
    dirs = [settings.home / "workflows", *(Path(d).expanduser() for d in workflows_dirs)]
    return Workbench(registry, toolbox, runs, dirs, inline)


def close_workbench(work: Workbench) -> None:
    """Pause this process's runs (resumable) and stop the inline queue's workers."""
    if not work.inline:
        work.runs.engine.close()
        return
    try:
        paused = work.pause_own_runs()
        if paused:
            log.info("asked %d running run(s) to pause for the shutdown", paused)
        work.runs.janus.queue.stop(timeout=SHUTDOWN_GRACE_SECONDS)
    finally:
        work.runs.engine.close()
