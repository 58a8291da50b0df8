"""Journaled tool calls: each call is recorded under an idempotency key before it runs.

The key is (run, step path, call number, hash of tool and arguments), so
a replayed step asks for the same keys in the same order. A call whose
journal row holds a result is answered from it (``workflow.tool.reused``):
a crash after a side effect but before the step was marked done does not
repeat the effect. A row left ``started`` by a crash inside the call is
issued again, with the same key, only to an idempotent tool (it
deduplicates by that key or by content); for any other tool the row becomes
``interrupted`` and the step fails asking a person to check the effect —
``janus runs resume --rerun-interrupted`` re-arms such calls (``retry``).

For a tool that is not idempotent the journal row and its
``workflow.tool.called`` event are committed before the tool runs, and its
result right after it returns. An idempotent tool needs neither guard: its
row is committed once, with the result, since running it twice is harmless.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from janus_stack.agents.manifest import AgentManifest
from janus_stack.agents.tools import Toolbox, ToolContext, ToolInterruptedError, is_idempotent
from janus_stack.context import Janus
from janus_stack.workflows.flow import as_json
from janus_stack.workflows.hooks import Hooks
from janus_stack.workflows.recorder import RunRecorder, StepWrites
from janus_stack.workflows.records import DONE, INTERRUPTED, STARTED, JournalEntry


class ToolCalls:
    """The tool calls of one run segment, against the journal as it stood when it began.

    Only this segment writes the run's journal (it owns the run's lease), and
    every call key is unique within a segment, so the rows loaded at the
    start are all a call ever needs to look up.
    """

    def __init__(
        self,
        janus: Janus,
        toolbox: Toolbox,
        hooks: Hooks,
        recorder: RunRecorder,
        journal: dict[str, JournalEntry],
    ) -> None:
        self.janus = janus
        self.toolbox = toolbox
        self.hooks = hooks
        self.recorder = recorder
        self.journal = journal
        self.lock = threading.Lock()
        self.cache: dict[str, Any] = {}

    def call(
        self,
        writes: StepWrites,
        key: str,
        agent: AgentManifest | None,
        name: str,
        arguments: dict[str, Any],
        counter: list[int],
        call_agent: Callable[[str, Any], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Call ``name`` for step ``key``, or answer from the journal; ``counter`` numbers calls."""
        run = self.recorder.run
        context = ToolContext(
            self.janus,
            run.tenant,
            agent,
            run.id,
            key,
            call_agent=call_agent,
            cache=self.cache,
        )
        checked = as_json(self.toolbox.check(context, name, arguments))
        counter[0] += 1
        digest = hashlib.sha256(
            json.dumps([name, checked], sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()[:16]
        ikey = f"{run.id}:{key}:{counter[0]}:{digest}"
        context.idempotency_key = ikey
        journaled = self.journal.get(ikey)
        draft = self.recorder.draft
        if journaled is not None and journaled.status == DONE:
            writes.event(draft("workflow.tool.reused", step=key, tool=name, key=ikey))
            return dict(journaled.result or {})
        tool = self.toolbox.get(name)
        guarded = not is_idempotent(tool)
        if guarded and journaled is not None and journaled.status in (STARTED, INTERRUPTED):
            self._interrupted(writes, key, name, ikey)
        who = agent.name if agent is not None else None
        writes.begin_call(ikey, key, name, who, checked, again=journaled is not None)
        writes.event(draft("workflow.tool.called", step=key, tool=name, key=ikey, agent=who))
        if guarded:
            self.recorder.commit(writes)
        self.hooks.before_tool(run.id, key, name, ikey)
        try:
            with self.lock:
                result = as_json(tool.call(context, checked))
        except Exception as exc:
            writes.finish_call(ikey, result=None, error=f"{type(exc).__name__}: {exc}")
            writes.event(
                draft("workflow.tool.failed", step=key, tool=name, key=ikey, error=str(exc))
            )
            if guarded:
                self.recorder.commit(writes)
            raise
        if not isinstance(result, dict):
            result = {"result": result}
        writes.finish_call(ikey, result=result, error=None)
        writes.event(draft("workflow.tool.done", step=key, tool=name, key=ikey))
        self.recorder.commit(writes)
        self.hooks.after_tool(run.id, key, name, ikey)
        return result

    def _interrupted(self, writes: StepWrites, key: str, name: str, ikey: str) -> NoReturn:
        """A call the process died in, of a tool that is not idempotent: never re-run blindly."""
        run_id = self.recorder.run.id
        message = (
            f"tool {name!r} (call {ikey}) was interrupted while it executed and may or may "
            "not have taken effect; it is not idempotent, so it is not run again by itself: "
            f"check its effect, then `janus runs resume {run_id} --rerun-interrupted` "
            "to run it again (or `janus runs cancel`)"
        )
        writes.interrupt_call(ikey, message)
        writes.event(
            self.recorder.draft("workflow.tool.interrupted", step=key, tool=name, key=ikey)
        )
        raise ToolInterruptedError(message)
