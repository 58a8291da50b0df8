"""``max_wall_seconds`` of a run: checked before each step, counted across a resume.

No model: a tool that waits makes the time pass. The waits are lower bounds
on the elapsed time, so the assertions hold however slow the machine is;
where a step must still fit in the budget, the margin is a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from workbench import (  # noqa: F401 - fixtures
    Calls,
    calls_fixture,
    execute,
    home_fixture,
    janus_fixture,
    registry_fixture,
    runs_fixture,
    workflow_fixture,
)

from janus_stack.agents import FunctionTool, Toolbox
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec

Make = Callable[[str], WorkflowSpec]


@pytest.fixture(name="toolbox")
def waiting_toolbox_fixture(calls: Calls) -> Toolbox:
    """The built-ins, ``test.effect`` and ``test.wait``, which sleeps ``seconds``."""

    def wait(seconds: float) -> dict[str, float]:
        """Let wall time pass."""
        time.sleep(seconds)
        return {"waited": seconds}

    box = Toolbox.default(plugins=False)
    box.add(calls.tool())
    box.add(FunctionTool.wrap("test.wait", wait))
    return box


def budget_events(runs: Runs, run_id: str) -> list[str]:
    events = runs.janus.events.query(subject=f"run:{run_id}", type="workflow.run.budget_exceeded")
    return [str(e.payload["error"]) for e in events]


def test_a_run_over_its_wall_time_stops_before_the_next_step(
    runs: Runs, workflow: Make, calls: Calls
) -> None:
    spec = workflow("""
        name: slow
        budget: {max_wall_seconds: 0.2}
        steps:
          - {id: wait, kind: tool, tool: test.wait, arguments: {seconds: 0.5}}
          - {id: after, kind: tool, tool: test.effect, arguments: {label: after}}
    """)
    run = runs.store.run(execute(runs, spec))
    assert run.status == "budget_exceeded"
    assert run.error is not None and "max_wall_seconds=0.2" in run.error
    assert "wall time" in run.error and "slow" in run.error
    assert calls.seen == []  # the step after the overrun never ran
    steps = runs.store.steps(run.id)
    assert steps["wait"].status == "done" and "after" not in steps
    assert budget_events(runs, run.id) == [run.error]
    assert run.elapsed_s >= 0.5


def test_wall_time_spent_before_a_pause_counts_after_the_resume(
    runs: Runs, workflow: Make, calls: Calls
) -> None:
    spec = workflow("""
        name: patient
        budget: {max_wall_seconds: 3}
        steps:
          - {id: first, kind: tool, tool: test.wait, arguments: {seconds: 2}}
          - {id: approve, kind: human, prompt: "Go on?"}
          - {id: second, kind: tool, tool: test.wait, arguments: {seconds: 2}}
          - {id: after, kind: tool, tool: test.effect, arguments: {label: after}}
    """)
    run_id = execute(runs, spec)
    paused = runs.store.run(run_id)
    assert paused.status == "paused", paused.error  # 2 s of 3 spent
    assert paused.elapsed_s >= 2

    runs.feedback(run_id, "yes")
    runs.resume(run_id)
    assert runs.engine.execute(run_id) == "budget_exceeded"  # 2 s more: 4 s of 3
    run = runs.store.run(run_id)
    assert run.error is not None and "max_wall_seconds=3" in run.error
    assert run.elapsed_s >= 4
    assert calls.seen == []
    assert runs.store.steps(run_id)["second"].status == "done"
    assert budget_events(runs, run_id) == [run.error]
