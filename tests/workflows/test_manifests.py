"""Agent manifests: schema, located errors, unknown tools, scopes, reload, CLI."""

from __future__ import annotations

import json
import os
import time
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
from janus_stack.agents.registry import load_manifest
from janus_stack.agents.sourcefile import parse_text
from janus_stack.cli import app

GOOD = """
    name: researcher
    description: Finds things.
    instructions: Answer from the memory.
    tools: [memory.ask, memory.search]
    memory:
      read: {tenants: [default], tags: {project: apollo}}
    budget: {max_tokens: 100, max_steps: 4}
"""


def problems_of(text: str, toolbox: Toolbox, allowed: set[str] | None = None) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_manifest(parse_text(text, "agents/x.yaml"), toolbox, allowed)
    return [str(p) for p in info.value.problems]


def test_a_valid_manifest_loads(home: Path, registry: AgentRegistry) -> None:
    write(home / "agents" / "researcher.yaml", GOOD)
    agent = registry.get("researcher")
    assert agent.tools == ["memory.ask", "memory.search"]
    assert agent.memory.read.tags == {"project": "apollo"}
    assert agent.memory.write is None
    assert agent.model.provider == "default"
    assert agent.budget.max_tokens == 100
    assert list(registry.agents()) == ["researcher"]


def test_schema_errors_name_file_line_and_field(toolbox: Toolbox) -> None:
    text = "name: a\ninstructions: hi\nbudget:\n  max_steps: lots\n  colour: red\n"
    found = problems_of(text, toolbox)
    assert any(p.startswith("agents/x.yaml:4: budget.max_steps:") for p in found), found
    assert "agents/x.yaml:5: budget.colour: unknown field" in found
    missing = problems_of("name: a\n", toolbox)
    assert any("instructions: field required" in p for p in missing)


def test_yaml_syntax_errors_name_the_line(toolbox: Toolbox) -> None:
    found = problems_of("name: a\ninstructions: [unclosed\nmodel: x\n", toolbox)
    assert found[0].startswith("agents/x.yaml:3:") and "not valid YAML" in found[0]


def test_unknown_tools_and_disallowed_scopes_are_rejected_at_load(toolbox: Toolbox) -> None:
    base = "name: a\ninstructions: hi\n"
    unknown = problems_of(base + "tools:\n  - memory.ask\n  - shell.exec\n", toolbox)
    assert unknown == [unknown[0]] and unknown[0].startswith("agents/x.yaml:5: tools.1:")
    assert "unknown tool 'shell.exec'" in unknown[0]

    no_write = problems_of(base + "tools: [memory.remember]\n", toolbox)
    assert "writes memory but the agent has no memory.write scope" in no_write[0]

    wildcard = problems_of(base + "memory:\n  read: {tenants: ['*']}\n", toolbox)
    assert "memory.read.tenants.0" in wildcard[0] and "wildcard" in wildcard[0]

    outside = problems_of(base + "memory:\n  read: {tenants: [acme]}\n", toolbox, {"default"})
    assert "disallowed scope: tenant 'acme'" in outside[0]

    wider = problems_of(
        base + "memory:\n  read: {tenants: [a]}\n  write: {tenants: [b]}\n", toolbox
    )
    assert "writes to ['b'] it may not read" in wider[0]


def test_the_registry_reloads_changed_and_removed_files(
    home: Path, registry: AgentRegistry
) -> None:
    path = write(home / "agents" / "researcher.yaml", GOOD)
    assert registry.get("researcher").description == "Finds things."
    path.write_text(path.read_text().replace("Finds things.", "Finds more."))
    stamp = time.time() + 5
    os.utime(path, (stamp, stamp))
    assert registry.get("researcher").description == "Finds more."
    bad = write(home / "agents" / "broken.yaml", "name: broken\ninstructions: x\ntools: [nope]\n")
    assert [p.where for p in registry.problems()] == ["tools.0"]
    bad.unlink()
    path.unlink()
    assert registry.agents() == {} and registry.problems() == []


def test_a_name_defined_twice_is_a_problem(home: Path, registry: AgentRegistry) -> None:
    write(home / "agents" / "a.yaml", GOOD)
    write(home / "agents" / "b.yaml", GOOD)
    assert any("already defined" in p.message for p in registry.problems())


def test_cli_list_show_validate(home: Path) -> None:
    write(home / "agents" / "researcher.yaml", GOOD)
    runner = CliRunner()
    listed = runner.invoke(app, ["agents", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [a["name"] for a in json.loads(listed.stdout)["agents"]] == ["researcher"]
    shown = runner.invoke(app, ["agents", "show", "researcher", "--json"])
    assert json.loads(shown.stdout)["budget"]["max_steps"] == 4
    assert runner.invoke(app, ["agents", "validate"]).exit_code == 0

    write(home / "agents" / "bad.yaml", "name: bad\ninstructions: x\nbudget: {max_cost: -1}\n")
    result = runner.invoke(app, ["agents", "validate", "--json"])
    assert result.exit_code == 1
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["line"] == 3 and problem["field"] == "budget.max_cost"
    assert problem["file"].endswith("bad.yaml")
