"""Fixtures for agents and workflows: a home with agent files, a context, a service."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from janus_stack.agents import AgentRegistry, FunctionTool, Toolbox
from janus_stack.config import AGENT_OUTPUT_ENV, load_settings
from janus_stack.context import Janus
from janus_stack.workflows.checks import validate_file
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


class Calls:
    """A side-effecting test tool: it records every execution."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def tool(self) -> FunctionTool:
        def effect(label: str, n: int = 0) -> dict[str, Any]:
            """Record a side effect."""
            self.seen.append({"label": label, "n": n})
            return {"label": label, "count": len(self.seen), "n": n}

        return FunctionTool.wrap("test.effect", effect)


# The tiny random-weight test model closes a string only when the grammar makes it, so
# the agents of these tests get short strings of a small charset (``OutputLimits``); it
# is set in the environment (the ``agent_output`` setting) so that ``janus`` children of
# a test inherit it too.
TINY_MODEL_OUTPUT = '{"max_answer_chars": 240, "max_argument_chars": 80, "charset": "basic"}'


@pytest.fixture(name="home")
def home_fixture(_isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(AGENT_OUTPUT_ENV, TINY_MODEL_OUTPUT)
    return _isolated_home


@pytest.fixture(name="calls")
def calls_fixture() -> Calls:
    return Calls()


@pytest.fixture(name="toolbox")
def toolbox_fixture(calls: Calls) -> Toolbox:
    box = Toolbox.default(plugins=False)
    box.add(calls.tool())
    return box


@pytest.fixture(name="registry")
def registry_fixture(home: Path, toolbox: Toolbox) -> AgentRegistry:
    return AgentRegistry([home / "agents"], toolbox)


@pytest.fixture(name="janus")
def janus_fixture(home: Path) -> Iterator[Janus]:
    with Janus(load_settings()) as opened:
        yield opened


@pytest.fixture(name="runs")
def runs_fixture(janus: Janus, registry: AgentRegistry, toolbox: Toolbox) -> Iterator[Runs]:
    service = Runs(janus, registry, toolbox)
    service.register(janus.handlers)  # tasks are enqueued, but tests execute them directly
    yield service
    service.engine.close()


@pytest.fixture(name="workflow")
def workflow_fixture(
    home: Path, registry: AgentRegistry, toolbox: Toolbox
) -> Callable[[str], WorkflowSpec]:
    counter = iter(range(1000))

    def make(text: str) -> WorkflowSpec:
        path = write(home / f"wf{next(counter)}.yaml", text)
        return validate_file(path, registry, toolbox)

    return make


def execute(
    runs: Runs, spec: WorkflowSpec, inputs: dict[str, Any] | None = None, tenant: str = "default"
) -> str:
    """Create a run and execute it in this thread (no queue); returns its id."""
    run_id = runs.create(spec, inputs or {}, tenant=tenant)
    runs.engine.execute(run_id)
    return run_id
