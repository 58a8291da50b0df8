"""Workflow files: the expression language and static validation, each problem located."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from workbench import (  # noqa: F401 - fixtures
    calls_fixture,
    home_fixture,
    janus_fixture,
    registry_fixture,
    runs_fixture,
    toolbox_fixture,
    workflow_fixture,
    write,
)

from janus_stack.agents import AgentRegistry, SpecError, Toolbox
from janus_stack.cli import app
from janus_stack.workflows import expressions
from janus_stack.workflows.checks import validate_file

AGENT = "name: helper\ninstructions: help\n"


def problems(home: Path, registry: AgentRegistry, toolbox: Toolbox, text: str) -> list[str]:
    write(home / "agents" / "helper.yaml", AGENT)
    path = write(home / "bad.yaml", text)
    with pytest.raises(SpecError) as info:
        validate_file(path, registry, toolbox)
    return [str(p) for p in info.value.problems]


def test_expressions_are_interpreted_not_evaluated() -> None:
    scope = {"inputs": {"n": 3}, "steps": {"a": {"output": {"text": "Approved!", "xs": [1]}}}}
    assert expressions.evaluate("inputs.n >= 3 and len(steps.a.output.xs) == 1", scope) is True
    assert expressions.evaluate("contains(lower(steps.a.output.text), 'approved')", scope)
    assert expressions.evaluate("steps.missing.output.text or 'fallback'", scope) == "fallback"
    assert expressions.render("{{ steps.a.output }}", scope) == {"text": "Approved!", "xs": [1]}
    assert expressions.render("n={{ inputs.n }}; {{ steps.a.output }}", scope) == "n=3; Approved!"
    for bad in (
        "__import__('os')",
        "inputs.__class__.mro()",
        "[x for x in inputs]",
        "open('f')",
        "lambda: 1",
    ):
        with pytest.raises(expressions.ExpressionError):
            expressions.parse(bad)


def test_unknown_agents_and_tools_name_the_step(
    home: Path, registry: AgentRegistry, toolbox: Toolbox
) -> None:
    found = problems(
        home,
        registry,
        toolbox,
        """
        name: w
        steps:
          - {id: ask, kind: agent, agent: nobody, input: hi}
          - {id: act, kind: tool, tool: shell.exec}
    """,
    )
    assert found[0].endswith(
        "bad.yaml:3: steps.0.agent: step 'ask': unknown agent 'nobody' (known: helper)"
    )
    assert "bad.yaml:4: steps.1.tool: step 'act': unknown tool 'shell.exec'" in found[1]


def test_loops_need_a_max_and_jumps_only_go_forward(
    home: Path, registry: AgentRegistry, toolbox: Toolbox
) -> None:
    unbounded = problems(
        home,
        registry,
        toolbox,
        """
        name: w
        steps:
          - id: again
            kind: loop
            steps: [{id: a, kind: agent, agent: helper, input: hi}]
    """,
    )
    assert unbounded == [f"{home}/bad.yaml:3: steps.0.max: step 'again': field required"]
    backwards = problems(
        home,
        registry,
        toolbox,
        """
        name: w
        steps:
          - {id: a, kind: agent, agent: helper, input: hi}
          - id: check
            kind: branch
            cases: [{when: "true", goto: a}]
    """,
    )
    assert "step 'check': unbounded loop: jumps back to 'a'" in backwards[0]
    assert ":6: steps.1.cases.0.goto:" in backwards[0]


def test_unreachable_steps_missing_inputs_and_late_references(
    home: Path, registry: AgentRegistry, toolbox: Toolbox
) -> None:
    found = problems(
        home,
        registry,
        toolbox,
        """
        name: w
        inputs: {topic: {}}
        steps:
          - {id: a, kind: agent, agent: helper, input: "{{ inputs.subject }}", next: end}
          - {id: orphan, kind: agent, agent: helper, input: "{{ steps.later.output }}"}
          - {id: later, kind: agent, agent: helper, input: hi}
    """,
    )
    text = "\n".join(found)
    assert "step 'a': missing input 'subject': declare it under inputs (declared: topic)" in text
    assert "step 'orphan': unreachable" in text
    assert "step 'later': unreachable" in text
    assert "step 'orphan': references step 'later', which runs after it" in text


def test_a_loop_body_may_read_its_previous_iteration(
    home: Path, registry: AgentRegistry, toolbox: Toolbox
) -> None:
    write(home / "agents" / "helper.yaml", AGENT)
    path = write(
        home / "ok.yaml",
        """
        name: w
        steps:
          - id: rounds
            kind: loop
            max: 2
            until: "steps.b.output.text == 'x'"
            steps:
              - {id: a, kind: agent, agent: helper, input: "{{ steps.b.output.text or 'go' }}"}
              - {id: b, kind: agent, agent: helper, input: "{{ steps.a.output }}"}
    """,
    )
    assert validate_file(path, registry, toolbox).name == "w"


def test_cli_validate_reports_problems(home: Path) -> None:
    write(home / "wf.yaml", "name: w\nsteps:\n  - {id: a, kind: tool, tool: nope}\n")
    result = CliRunner().invoke(app, ["workflows", "validate", str(home / "wf.yaml"), "--json"])
    assert result.exit_code == 1
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["line"] == 3 and "step 'a': unknown tool 'nope'" in problem["message"]
