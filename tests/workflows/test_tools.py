"""The tool gate: agents' tools and memory scopes, plugins (LangChain: test_langchain_tools)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from workbench import (  # noqa: F401 - fixtures
    calls_fixture,
    home_fixture,
    janus_fixture,
    registry_fixture,
    runs_fixture,
    toolbox_fixture,
    workflow_fixture,
)

from janus_stack.agents import (
    AgentManifest,
    FunctionTool,
    Toolbox,
    ToolContext,
    ToolRefusedError,
)
from janus_stack.agents.tools import entry_point_tools
from janus_stack.context import Janus
from janus_stack.errors import InvalidInputError


def agent(**fields: Any) -> AgentManifest:
    return AgentManifest.model_validate({"name": "probe", "instructions": "x", **fields})


def test_calls_outside_the_scopes_are_refused_and_logged(janus: Janus, toolbox: Toolbox) -> None:
    reader = agent(tools=["memory.search"], memory={"read": {"tenants": ["default"]}})
    context = ToolContext(janus, "default", reader, run_id="r1", step_key="s")
    with pytest.raises(ToolRefusedError, match="may not read tenant 'acme'"):
        toolbox.check(context, "memory.search", {"query": "q", "tenant": "acme"})
    with pytest.raises(ToolRefusedError, match="not in its tools"):
        toolbox.check(context, "memory.ask", {"question": "q"})
    with pytest.raises(ToolRefusedError, match=r"no memory\.write scope"):
        toolbox.check(
            ToolContext(janus, "default", agent(tools=["memory.remember"])),
            "memory.remember",
            {"text": "x"},
        )
    refused = janus.events.query(type="agent.tool.refused")
    assert [e.payload["tool"] for e in refused] == [
        "memory.search",
        "memory.ask",
        "memory.remember",
    ]
    assert refused[0].actor == "agent:probe" and refused[0].subject == "run:r1"


def test_reads_are_confined_to_the_scope_tags(janus: Janus, toolbox: Toolbox) -> None:
    reader = agent(tools=["memory.search"], memory={"read": {"tags": {"project": "apollo"}}})
    context = ToolContext(janus, "default", reader)
    checked = toolbox.check(context, "memory.search", {"query": "q"})
    assert checked == {"query": "q", "tenant": "default", "filters": {"tags.project": "apollo"}}
    with pytest.raises(ToolRefusedError, match=r"tags\.project"):
        toolbox.check(context, "memory.search", {"query": "q", "filters": {"tags.project": "x"}})


def test_object_reads_are_scoped_by_the_key_tenant(janus: Janus, toolbox: Toolbox) -> None:
    reader = agent(tools=["objects.read"])
    with pytest.raises(ToolRefusedError, match="tenant 'acme'"):
        toolbox.check(
            ToolContext(janus, "default", reader), "objects.read", {"key": "acme/" + "0" * 64}
        )


def test_bad_arguments_are_an_input_error(janus: Janus, toolbox: Toolbox) -> None:
    with pytest.raises(InvalidInputError, match="k: 0 is less than the minimum"):
        toolbox.check(ToolContext(janus, "default"), "memory.search", {"query": "q", "k": 0})


def test_function_tools_take_their_schema_from_the_signature() -> None:
    def lookup(city: str, limit: int = 3) -> list[str]:
        """Find things in a city."""
        return [city] * limit

    tool = FunctionTool.wrap("city.lookup", lookup)
    assert tool.parameters == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["city"],
    }
    assert tool.description == "Find things in a city."
    assert tool.call(None, {"city": "Lyon", "limit": 2}) == {"result": ["Lyon", "Lyon"]}  # type: ignore[arg-type]


def test_python_functions_become_tools_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "janus_probe_tools.py").write_text(
        "def shout(text: str) -> str:\n    '''Upper-case.'''\n    return text.upper()\n"
    )
    info = tmp_path / "janus_probe_tools-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: janus-probe-tools\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[janus_stack.tools]\nprobe.shout = janus_probe_tools:shout\n"
        "probe.broken = janus_probe_tools:missing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    tools, problems = entry_point_tools()
    assert [t.name for t in tools] == ["probe.shout"]
    assert tools[0].call(None, {"text": "hi"}) == {"result": "HI"}  # type: ignore[arg-type]
    assert len(problems) == 1 and "probe.broken" in problems[0]
    sys.modules.pop("janus_probe_tools", None)
