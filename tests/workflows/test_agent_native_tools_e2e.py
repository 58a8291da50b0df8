"""Agents over native tool calling, end to end with a real llama.cpp server (tiny random GGUF).

``python -m llama_cpp.server --chat_format chatml-function-calling`` does
OpenAI tool calling; the agent's turns go to it as ``tools`` (the action
schema's choices, the answer as the pseudo-tool ``final``) in each turn
that offers a tool. With ``tool_choice: required`` and one tool, the first
turn names that tool, so the server forces the call under a grammar of its
parameters: the random model's call is well-formed. The last turn can only
answer: a schema turn, whose answer streams as tokens. The
``llm.completion`` log line says how each turn asked for tools
(``tool_mode``). A turn with several choices asks ``required``, which
llama-cpp-python cannot do, and its default chat format ignores tools
unless one is named: there the agent falls back to JSON-schema turns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engines import (  # noqa: F401 - fixtures
    llama_server_fixture,
    tiny_model_path_fixture,
)
from structlog.testing import capture_logs
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

from conformance._llm_servers import LlamaServer
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec

Make = Callable[[str], WorkflowSpec]


@pytest.fixture(scope="module", name="calling_server")
def calling_server_fixture(
    tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    with LlamaServer(
        tiny_model_path,
        tmp_path_factory.mktemp("fc-log"),
        n_ctx=8192,
        chat_format="chatml-function-calling",
    ) as server:
        yield server


def agent(home: Path, name: str, model: dict[str, Any], **fields: Any) -> None:
    manifest = {"name": name, "instructions": f"You are {name}.", "model": model, **fields}
    write(home / "agents" / f"{name}.yaml", json.dumps(manifest))


def run_agent(runs: Runs, workflow: Make, name: str) -> tuple[str, list[dict[str, Any]]]:
    spec = workflow(f"""
        name: {name}
        steps: [{{id: act, kind: agent, agent: {name}, input: "Record one effect."}}]
    """)
    with capture_logs() as logs:
        run_id = execute(runs, spec)
    return run_id, [e for e in logs if e["event"] in ("llm.completion", "llm.tools_fallback")]


def test_a_tool_call_goes_through_native_tool_calling(
    home: Path,
    runs: Runs,
    workflow: Make,
    calls: Calls,
    calling_server: LlamaServer,
) -> None:
    model = {"provider": calling_server.url, "tool_choice": "required"}
    agent(home, "doer", model, tools=["test.effect"], budget={"max_steps": 2})
    run_id, logs = run_agent(runs, workflow, "doer")
    run = runs.store.run(run_id)
    assert run.status == "done", run.error
    output = runs.store.steps(run_id)["act"].output
    assert output is not None and output["mode"] == "llm" and output["tool_calls"] == 1
    assert output["text"]  # the last turn, a schema turn, answered
    assert len(calls.seen) == 1  # executed once, through the journal
    assert [c["tool"] for c in runs.store.calls(run_id)] == ["test.effect"]
    assert [e["tool_mode"] for e in logs] == ["native", ""]  # the answer streams its tokens
    assert logs[0]["finish_reason"] == "tool_calls"
    assert run.prompt_tokens > 0 and run.completion_tokens > 0


def test_a_turn_with_a_choice_falls_back_where_the_server_cannot_require_a_call(
    home: Path, runs: Runs, workflow: Make, calling_server: LlamaServer
) -> None:
    """A tool or the answer: ``tool_choice: required``, which chatml-function-calling cannot
    do (llama-cpp-python 0.3 sends an empty stream; its ``auto`` either forces an empty
    message or fails when streamed). The slot notices before any text and the agent goes
    on with schema turns, ending within its steps."""
    agent(home, "chooser", {"provider": calling_server.url}, tools=["test.effect"])
    run_id, logs = run_agent(runs, workflow, "chooser")
    run = runs.store.run(run_id)
    assert run.status == "done", run.error
    assert logs[0]["event"] == "llm.tools_fallback" and logs[0]["reason"] == "an empty stream"
    assert logs[1]["tool_mode"] == "schema"
    assert all(e["tool_mode"] == "" for e in logs[2:])  # plain schema turns from then on


def test_an_agent_on_a_server_that_ignores_tools_falls_back_to_the_schema(
    home: Path, runs: Runs, workflow: Make, llama_server: LlamaServer
) -> None:
    """The default chat format answers ``required`` (two tools) in text: the slot notices at
    the first piece, emulates that turn with the JSON schema, and the agent keeps to its
    schema turns from then on (the JSON-only system prompt included)."""
    model = {"provider": llama_server.url, "tool_choice": "required"}
    tools = ["test.effect", "memory.search"]
    agent(home, "plainer", model, tools=tools, budget={"max_steps": 2})
    run_id, logs = run_agent(runs, workflow, "plainer")
    run = runs.store.run(run_id)
    assert run.status == "done", run.error
    output = runs.store.steps(run_id)["act"].output
    assert output is not None and output["tool_calls"] == 1
    journal = runs.store.calls(run_id)
    assert len(journal) == 1 and journal[0]["tool"] in tools
    assert [e["event"] for e in logs] == ["llm.tools_fallback", "llm.completion", "llm.completion"]
    assert "tool_choice=required" in logs[0]["reason"]
    assert [e["tool_mode"] for e in logs[1:]] == ["schema", ""]  # emulated, then plain schema
