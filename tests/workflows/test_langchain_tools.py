"""LangChain tools as Janus tools: a ``@tool`` function and a ``BaseTool`` subclass of the
user's own are schema-checked, scope-checked and journaled like native tools."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field
from workbench import (  # noqa: F401 - fixtures
    execute,
    home_fixture,
    janus_fixture,
    registry_fixture,
    runs_fixture,
    workflow_fixture,
    write,
)

from janus_stack.agents import (
    AgentManifest,
    Toolbox,
    ToolContext,
    ToolRefusedError,
    from_langchain,
)
from janus_stack.agents.actions import action_schema
from janus_stack.agents.builtin import builtin_tools
from janus_stack.agents.manifest import OutputLimits
from janus_stack.agents.tools import LangChainTool, entry_point_tools
from janus_stack.context import Janus
from janus_stack.errors import InvalidInputError
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec

pytest.importorskip("langchain_core", reason="langchain-core (the test extra) is not installed")
from langchain_core.tools import BaseTool, tool

PLUGIN = """
from langchain_core.tools import BaseTool

class Reverse(BaseTool):
    name: str = "text.reverse"
    description: str = "Reverse a text."

    def _run(self, text: str) -> str:
        return text[::-1]

reverse = Reverse()
"""


@tool
def convert(amount: float, currency: str = "EUR") -> str:
    """Convert an amount of US dollars."""
    rate = {"EUR": 0.5, "GBP": 0.25}[currency]
    return f"{amount * rate:.2f} {currency}"


@tool
async def slow_echo(text: str) -> str:
    """Echo a text, asynchronously."""
    return text


class Notes(BaseModel):
    tenant: str = Field(max_length=64)
    lines: list[str] = Field(min_length=1, max_length=3)


class NoteKeeper(BaseTool):
    """A tool of the user's own package that writes memory (so its tenant is scoped)."""

    name: str = "notes.keep"
    description: str = "Keep a few lines of notes for a tenant."
    args_schema: type[BaseModel] = Notes
    kept: list[tuple[str, list[str]]] = Field(default_factory=list)

    def _run(self, tenant: str, lines: list[str]) -> dict[str, Any]:
        self.kept.append((tenant, lines))
        return {"tenant": tenant, "kept": len(lines)}


@pytest.fixture(name="keeper")
def keeper_fixture() -> NoteKeeper:
    return NoteKeeper()


@pytest.fixture(name="toolbox")
def langchain_toolbox_fixture(keeper: NoteKeeper) -> Toolbox:
    return Toolbox(
        [
            *builtin_tools(),
            from_langchain(convert),
            from_langchain(slow_echo),
            from_langchain(keeper, access="write", idempotent=True),
        ]
    )


def agent(**fields: Any) -> AgentManifest:
    return AgentManifest.model_validate({"name": "clerk", "instructions": "x", **fields})


def test_the_adapter_takes_the_schema_and_runs_sync_and_async_tools(toolbox: Toolbox) -> None:
    converter = toolbox.get("convert")
    assert converter.description == "Convert an amount of US dollars."
    assert converter.parameters["required"] == ["amount"]
    assert converter.parameters["properties"]["amount"]["type"] == "number"
    keeper = toolbox.get("notes.keep")
    assert keeper.parameters["properties"]["lines"]["maxItems"] == 3
    assert keeper.access == "write" and getattr(keeper, "idempotent", False)
    assert converter.call(None, {"amount": 10}) == {"result": "5.00 EUR"}  # type: ignore[arg-type]
    echo = toolbox.get("slow_echo")
    assert echo.call(None, {"text": "hi"}) == {"result": "hi"}  # type: ignore[arg-type]

    # What a model is offered follows the LangChain schema.
    clerk = agent(tools=["notes.keep"], memory={"write": {}})
    (call,) = [
        o
        for o in action_schema(clerk, toolbox, OutputLimits())["anyOf"]
        if "arguments" in o["properties"]
    ]
    lines = call["properties"]["arguments"]["properties"]["lines"]
    assert (lines["type"], lines["minItems"], lines["maxItems"]) == ("array", 1, 3)

    with pytest.raises(InvalidInputError, match="is not a langchain_core BaseTool"):
        from_langchain(object())


def test_langchain_tools_are_checked_at_the_gate(
    janus: Janus, toolbox: Toolbox, keeper: NoteKeeper
) -> None:
    clerk = agent(tools=["convert", "notes.keep"], memory={"write": {"tenants": ["default"]}})
    context = ToolContext(janus, "default", clerk, run_id="r1", step_key="s")
    with pytest.raises(InvalidInputError, match="amount"):
        toolbox.invoke(context, "convert", {"currency": "EUR"})
    with pytest.raises(InvalidInputError, match="lines"):
        toolbox.invoke(context, "notes.keep", {"tenant": "default", "lines": ["a"] * 4})
    with pytest.raises(ToolRefusedError, match="may not write tenant 'acme'"):
        toolbox.invoke(context, "notes.keep", {"tenant": "acme", "lines": ["a"]})
    with pytest.raises(ToolRefusedError, match="not in its tools"):
        toolbox.invoke(context, "slow_echo", {"text": "hi"})
    assert keeper.kept == []  # nothing refused ran
    refused = janus.events.query(type="agent.tool.refused")
    assert [e.payload["tool"] for e in refused] == ["notes.keep", "slow_echo"]
    assert toolbox.invoke(context, "notes.keep", {"tenant": "default", "lines": ["a"]}) == {
        "tenant": "default",
        "kept": 1,
    }


def test_langchain_tools_run_in_workflows_journaled_once(
    home: Path,
    runs: Runs,
    workflow: Callable[[str], WorkflowSpec],
    keeper: NoteKeeper,
) -> None:
    write(
        home / "agents" / "clerk.yaml",
        """
        name: clerk
        instructions: Keep notes.
        model: none
        tools: [convert, notes.keep]
        memory: {read: {tenants: [default]}, write: {tenants: [default]}}
        """,
    )
    spec = workflow("""
        name: clerical
        steps:
          - {id: price, kind: tool, tool: convert, agent: clerk, arguments: {amount: 8}}
          - {id: note, kind: tool, tool: notes.keep, agent: clerk,
             arguments: {tenant: default, lines: ["{{ steps.price.output.result }}"]}}
    """)
    run = runs.store.run(execute(runs, spec))
    assert run.status == "done", run.error
    steps = runs.store.steps(run.id)
    assert (steps["price"].output or {})["result"] == "4.00 EUR"
    assert keeper.kept == [("default", ["4.00 EUR"])]
    journal = runs.store.calls(run.id)
    assert [(c["tool"], c["status"], c["executions"]) for c in journal] == [
        ("convert", "done", 1),
        ("notes.keep", "done", 1),
    ]
    runs.engine.execute(run.id)  # a finished run resumed: nothing runs again
    assert keeper.kept == [("default", ["4.00 EUR"])]


def test_a_base_tool_from_any_package_loads_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "janus_lc_probe.py").write_text(PLUGIN)
    info = tmp_path / "janus_lc_probe-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: janus-lc-probe\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[janus_stack.tools]\ntext.reverse = janus_lc_probe:reverse\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    tools, problems = entry_point_tools()
    assert problems == []
    (reverse,) = tools
    assert isinstance(reverse, LangChainTool) and reverse.name == "text.reverse"
    assert reverse.parameters["required"] == ["text"]
    assert reverse.call(None, {"text": "abc"}) == {"result": "cba"}  # type: ignore[arg-type]
    sys.modules.pop("janus_lc_probe", None)
