"""The engine, in process: control flow, pauses, budgets, scopes, journal, accounting."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from workbench import (  # noqa: F401 - fixtures
    Calls,
    calls_fixture,
    execute,
    home_fixture,
    janus_fixture,
    registry_fixture,
    runs_fixture,
    toolbox_fixture,
    workflow_fixture,
    write,
)

from janus_stack.agents import AgentRegistry, Toolbox
from janus_stack.context import Janus
from janus_stack.errors import ConflictError
from janus_stack.workflows.agent_steps import FEEDBACK_HEADING
from janus_stack.workflows.hooks import Hooks
from janus_stack.workflows.records import Usage
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec

Make = Callable[[str], WorkflowSpec]


def step_counts(janus: Janus, run_id: str) -> Counter[str]:
    events = janus.events.query(subject=f"run:{run_id}", type="workflow.step.done", limit=10_000)
    return Counter(e.payload["step"] for e in events)


def test_a_bounded_loop_stops_at_its_max_or_its_condition(
    runs: Runs, workflow: Make, calls: Calls
) -> None:
    spec = workflow("""
        name: loop
        inputs: {stop_at: {required: false, default: 99}}
        steps:
          - id: rounds
            kind: loop
            max: 3
            until: "steps.tick.output.count >= int(inputs.stop_at)"
            steps:
              - {id: tick, kind: tool, tool: test.effect,
                 arguments: {label: "tick", n: "{{ loop.index }}"}}
        output: "{{ steps.rounds.output }}"
    """)
    first = execute(runs, spec)
    run = runs.store.run(first)
    assert run.status == "done", run.error
    assert run.output == {
        "iterations": 3,
        "stopped": "max",
        "last": {"label": "tick", "count": 3, "n": 2},
    }
    assert [c["n"] for c in calls.seen] == [0, 1, 2]
    assert list(runs.store.steps(first)) == ["rounds/0/tick", "rounds/1/tick", "rounds/2/tick"]

    calls.seen.clear()
    early = runs.store.run(execute(runs, spec, {"stop_at": "2"}))
    assert early.output is not None and early.output["iterations"] == 2
    assert early.output["stopped"] == "until"


def test_a_branch_takes_one_path(runs: Runs, workflow: Make, calls: Calls) -> None:
    spec = workflow("""
        name: branch
        inputs: {mode: {}}
        steps:
          - id: pick
            kind: branch
            cases: [{when: "inputs.mode == 'fast'", goto: fast}]
            otherwise: slow
          - {id: fast, kind: tool, tool: test.effect, arguments: {label: fast}, next: end}
          - {id: slow, kind: tool, tool: test.effect, arguments: {label: slow}}
    """)
    run = runs.store.run(execute(runs, spec, {"mode": "fast"}))
    assert run.status == "done" and [c["label"] for c in calls.seen] == ["fast"]
    assert run.output == {"label": "fast", "count": 1, "n": 0}
    execute(runs, spec, {"mode": "other"})
    assert [c["label"] for c in calls.seen] == ["fast", "slow"]


def test_parallel_branches_fan_out_and_in(runs: Runs, workflow: Make, calls: Calls) -> None:
    spec = workflow("""
        name: fan
        steps:
          - id: fan
            kind: parallel
            branches:
              left: [{id: l1, kind: tool, tool: test.effect, arguments: {label: l1}},
                     {id: l2, kind: tool, tool: test.effect, arguments: {label: l2}}]
              right: [{id: r1, kind: tool, tool: test.effect, arguments: {label: r1}}]
          - id: join
            kind: tool
            tool: test.effect
            arguments:
              label: "{{ steps.fan.output.left.label }}+{{ steps.fan.output.right.label }}"
    """)
    run = runs.store.run(execute(runs, spec))
    assert run.status == "done", run.error
    assert sorted(c["label"] for c in calls.seen) == ["l1", "l2", "l2+r1", "r1"]
    assert calls.seen[-1]["label"] == "l2+r1"
    assert set(runs.store.steps(run.id)) == {"fan/left/l1", "fan/left/l2", "fan/right/r1", "join"}


def test_human_input_pauses_until_feedback_then_resumes(
    runs: Runs, workflow: Make, calls: Calls
) -> None:
    spec = workflow("""
        name: ask-a-human
        steps:
          - {id: before, kind: tool, tool: test.effect, arguments: {label: before}}
          - {id: approve, kind: human, prompt: "Ship {{ steps.before.output.label }}?"}
          - {id: after, kind: tool, tool: test.effect,
             arguments: {label: "{{ steps.approve.output.text }}"}}
    """)
    run_id = execute(runs, spec)
    paused = runs.store.run(run_id)
    assert paused.status == "paused" and paused.waiting_for == "approve"
    assert runs.engine.execute(run_id) == "paused"  # not runnable until resumed

    runs.feedback(run_id, "yes, ship it")
    resumed = runs.resume(run_id)  # queues it; execute here instead of on a worker
    assert resumed.status == "queued"
    assert runs.engine.execute(run_id) == "done"
    assert [c["label"] for c in calls.seen] == ["before", "yes, ship it"]
    steps = runs.store.steps(run_id)
    assert steps["approve"].output == {"text": "yes, ship it", "prompt": "Ship before?"}
    assert all(count == 1 for count in step_counts(runs.janus, run_id).values())


def test_budgets_end_a_run_with_a_clear_message(runs: Runs, workflow: Make, calls: Calls) -> None:
    spec = workflow("""
        name: greedy
        budget: {max_steps: 2}
        steps:
          - id: many
            kind: loop
            max: 10
            steps: [{id: t, kind: tool, tool: test.effect, arguments: {label: t}}]
    """)
    run = runs.store.run(execute(runs, spec))
    assert run.status == "budget_exceeded"
    assert run.error is not None and "step 3 is over max_steps=2" in run.error
    assert len(calls.seen) == 2
    kinds = {e.type for e in runs.janus.events.query(subject=f"run:{run.id}")}
    assert "workflow.run.budget_exceeded" in kinds


def test_an_agent_outside_its_scope_is_refused_in_a_run(
    home: Path, runs: Runs, workflow: Make
) -> None:
    write(
        home / "agents" / "nosy.yaml",
        """
        name: nosy
        instructions: look around
        tools: [memory.ask]
        memory: {read: {tenants: [other]}}
    """,
    )
    spec = workflow("""
        name: nosy
        steps: [{id: look, kind: agent, agent: nosy, input: "what is there?"}]
    """)
    run = runs.store.run(execute(runs, spec))
    assert run.status == "failed"
    assert run.error is not None and "may not read tenant 'default'" in run.error
    refused = runs.janus.events.query(type="agent.tool.refused")
    assert refused[0].actor == "agent:nosy" and refused[0].subject == f"run:{run.id}"


def test_pause_and_cancel_requests_take_effect_between_steps(runs: Runs, workflow: Make) -> None:
    spec = workflow("""
        name: steer
        steps:
          - {id: a, kind: tool, tool: test.effect, arguments: {label: a}}
          - {id: b, kind: tool, tool: test.effect, arguments: {label: b}}
    """)
    run_id = runs.create(spec, {}, tenant="default")
    assert runs.pause(run_id).status == "paused"  # a queued run pauses at once
    runs.resume(run_id)
    runs.store.update_run(run_id, control="cancel")
    assert runs.engine.execute(run_id) == "cancelled"
    assert runs.store.steps(run_id) == {}


def test_usage_is_accounted_per_step_agent_and_tenant(
    home: Path, runs: Runs, workflow: Make
) -> None:
    write(home / "agents" / "echo.yaml", "name: echo\ninstructions: repeat\nmodel: none\n")
    spec = workflow("""
        name: echo
        steps:
          - {id: one, kind: agent, agent: echo, input: "First. Second. Third. Fourth."}
    """)
    run = runs.store.run(execute(runs, spec))
    assert run.status == "done"
    assert run.output is not None and run.output["text"] == "First. Second. Third."
    assert runs.store.usage("agent") == [
        {
            "agent": "echo",
            "steps": 1,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost": 0.0,
            "latency_s": pytest.approx(0, abs=1),
            "calls": 0,
        }
    ]
    assert [row["tenant"] for row in runs.store.usage("tenant")] == ["default"]
    assert runs.store.tokens(run.id)[0][2] == "First. Second. Third."


NOTED = """
    name: noted
    steps:
      - {id: first, kind: tool, tool: test.effect, arguments: {label: first}}
      - {id: think, kind: agent, agent: echo, input: "Only this."}
      - {id: later, kind: agent, agent: echo, input: "And this."}
"""


def injected(janus: Janus, run_id: str) -> list[dict[str, Any]]:
    events = janus.events.query(subject=f"run:{run_id}", type="workflow.feedback.injected")
    return [e.payload for e in sorted(events, key=lambda e: e.seq)]


def test_a_note_on_a_paused_run_reaches_its_next_agent_step_once(
    home: Path, runs: Runs, workflow: Make
) -> None:
    write(home / "agents" / "echo.yaml", "name: echo\ninstructions: repeat\nmodel: none\n")
    run_id = runs.create(workflow(NOTED), {}, tenant="default")
    runs.pause(run_id)
    runs.feedback(run_id, "Mind the budget.")
    runs.resume(run_id)
    assert runs.engine.execute(run_id) == "done"

    steps = runs.store.steps(run_id)
    think = steps["think"].output
    assert think is not None
    assert think["text"] == f"Only this. {FEEDBACK_HEADING} - Mind the budget."
    later = steps["later"].output
    assert later is not None and later["text"] == "And this."
    (note,) = runs.store.detail(runs.store.run(run_id))["feedback"]
    assert (note["step"], note["consumed_by"], note["text"]) == (None, "think", "Mind the budget.")
    assert injected(runs.janus, run_id) == [
        {"step": "think", "notes": [note["id"]], "new": [note["id"]], "chars": 16}
    ]
    assert runs.janus.events.verify().ok

    with pytest.raises(ConflictError, match="is done"):
        runs.feedback(run_id, "too late")


class Crash(BaseException):
    """Stands for SIGKILL: nothing in the engine catches it."""


class CrashOnce(Hooks):
    """Kills the run once, as step ``think`` starts: after its notes are taken."""

    def __init__(self, runs: Runs | None = None) -> None:
        self.runs = runs
        self.crashed = False

    def before_step(self, run_id: str, step_key: str, kind: str) -> None:
        if step_key == "first" and self.runs is not None:  # a note while the run runs
            self.runs.feedback(run_id, "Noted while running.")
        if step_key == "think" and not self.crashed:
            self.crashed = True
            raise Crash


def test_a_note_a_crashed_step_took_is_not_delivered_twice(
    home: Path, janus: Janus, registry: AgentRegistry, toolbox: Toolbox, workflow: Make
) -> None:
    write(home / "agents" / "echo.yaml", "name: echo\ninstructions: repeat\nmodel: none\n")
    hook = CrashOnce()
    runs = Runs(janus, registry, toolbox, hooks=hook)
    runs.register(janus.handlers)
    hook.runs = runs
    try:
        run_id = runs.create(workflow(NOTED), {}, tenant="default")
        with pytest.raises(Crash):
            runs.engine.execute(run_id)
        hook.runs = None
        taken = runs.store.steps(run_id)["think"]
        assert taken.status == "running"
        runs.feedback(run_id, "Noted after the crash.")  # the run is still "running"
        dead = f"{socket.gethostname()}:999999999:dead"  # as a SIGKILLed owner leaves it
        runs.store.update_run(run_id, owner=dead)
        runs.resume(run_id)
        assert runs.engine.execute(run_id) == "done"
    finally:
        runs.engine.close()

    notes = {n["text"]: n for n in runs.store.feedback(run_id)}
    running, after = notes["Noted while running."], notes["Noted after the crash."]
    assert (running["consumed_by"], after["consumed_by"]) == ("think", "later")
    steps = runs.store.steps(run_id)
    assert steps["think"].attempts == 2
    think, later = steps["think"].output, steps["later"].output
    assert think is not None and later is not None
    assert think["text"] == f"Only this. {FEEDBACK_HEADING} - Noted while running."
    assert later["text"] == f"And this. {FEEDBACK_HEADING} - Noted after the crash."
    assert [(p["step"], p["notes"], p["new"]) for p in injected(runs.janus, run_id)] == [
        ("think", [running["id"]], [running["id"]]),
        ("think", [running["id"]], []),  # the same prompt again, nothing new
        ("later", [after["id"]], [after["id"]]),
    ]
    assert runs.janus.events.verify().ok


KILLED_SPEND = Usage(600, 400, 0.25)


def killed_with_spend(runs: Runs, spec: WorkflowSpec) -> str:
    """A run killed in step ``think`` after its model calls had cost ``KILLED_SPEND``."""
    run_id = runs.create(spec, {}, tenant="default")
    with pytest.raises(Crash):
        runs.engine.execute(run_id)
    runs.store.record_attempt_spend(run_id, "think", KILLED_SPEND)  # as its calls recorded it
    runs.store.update_run(run_id, owner=f"{socket.gethostname()}:999999999:dead")
    return run_id


def counted_once(runs: Runs, run_id: str) -> None:
    """The killed spend is in the run's and the step's totals, once, with its event."""
    run = runs.store.run(run_id)
    assert Usage(run.prompt_tokens, run.completion_tokens, run.cost) == KILLED_SPEND
    think = runs.store.steps(run_id)["think"]
    assert Usage(think.prompt_tokens, think.completion_tokens, think.cost) == KILLED_SPEND
    assert runs.store.killed_spend(run_id) == Usage()
    (recovered,) = runs.janus.events.query(subject=f"run:{run_id}", type="workflow.usage.recovered")
    assert recovered.payload == {"prompt_tokens": 600, "completion_tokens": 400, "cost": 0.25}
    assert runs.janus.events.verify().ok


def test_what_a_killed_attempt_spent_counts_toward_the_run_and_its_budget(
    home: Path, janus: Janus, registry: AgentRegistry, toolbox: Toolbox, workflow: Make
) -> None:
    """The model calls an attempt made before the crash were paid for: the next segment adds
    them to the step and the run (with an event), and the run's budget sees them."""
    write(home / "agents" / "echo.yaml", "name: echo\ninstructions: repeat\nmodel: none\n")
    runs = Runs(janus, registry, toolbox, hooks=CrashOnce())
    runs.register(janus.handlers)
    try:
        run_id = killed_with_spend(runs, workflow(NOTED + "    budget: {max_tokens: 800}\n"))
        runs.resume(run_id)
        assert runs.engine.execute(run_id) == "budget_exceeded"  # 1,000 tokens before it ran
    finally:
        runs.engine.close()
    counted_once(runs, run_id)


def test_cancelling_a_killed_run_counts_what_it_spent(
    home: Path, janus: Janus, registry: AgentRegistry, toolbox: Toolbox, workflow: Make
) -> None:
    write(home / "agents" / "echo.yaml", "name: echo\ninstructions: repeat\nmodel: none\n")
    runs = Runs(janus, registry, toolbox, hooks=CrashOnce())
    runs.register(janus.handlers)
    try:
        run_id = killed_with_spend(runs, workflow(NOTED))
        assert runs.cancel(run_id).status == "cancelled"
    finally:
        runs.engine.close()
    counted_once(runs, run_id)
