"""Engine middleware: no-op ``before_*``/``after_*`` hooks, from code or entry points.

Hooks observe a run (metrics, tracing, tests that kill the process at an
exact point); they cannot change it. ``before_tool`` runs once the call's
journal row is committed (for an idempotent tool, whose row is committed
with its result, once it is written), ``after_tool`` once the result is
committed, ``after_step`` once the step is recorded done. Plugins register
a class (instantiated without arguments) in the ``janus_stack.workflow_hooks``
entry-point group.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "janus_stack.workflow_hooks"

log = logging.getLogger(__name__)


class Hooks:
    def before_step(self, run_id: str, step_key: str, kind: str) -> None:
        """A step is about to run (not called when a finished step is replayed)."""

    def after_step(self, run_id: str, step_key: str, output: dict[str, Any]) -> None:
        """A step was recorded done."""

    def before_tool(self, run_id: str, step_key: str, tool: str, key: str) -> None:
        """The journal row of a call is written (committed, unless the tool is idempotent);
        the tool runs next."""

    def after_tool(self, run_id: str, step_key: str, tool: str, key: str) -> None:
        """The tool returned and its result is committed to the journal."""


class HookChain(Hooks):
    """Several hooks called in order."""

    def __init__(self, hooks: Sequence[Hooks] = ()) -> None:
        self.hooks = list(hooks)

    def before_step(self, run_id: str, step_key: str, kind: str) -> None:
        for hook in self.hooks:
            hook.before_step(run_id, step_key, kind)

    def after_step(self, run_id: str, step_key: str, output: dict[str, Any]) -> None:
        for hook in self.hooks:
            hook.after_step(run_id, step_key, output)

    def before_tool(self, run_id: str, step_key: str, tool: str, key: str) -> None:
        for hook in self.hooks:
            hook.before_tool(run_id, step_key, tool, key)

    def after_tool(self, run_id: str, step_key: str, tool: str, key: str) -> None:
        for hook in self.hooks:
            hook.after_tool(run_id, step_key, tool, key)


def entry_point_hooks() -> list[Hooks]:
    """Instances of every hook class registered under ``janus_stack.workflow_hooks``."""
    found: list[Hooks] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found.append(point.load()())
        except Exception:  # a broken plugin must not stop runs
            log.warning("workflow hook plugin %s failed to load", point.name, exc_info=True)
    return found
