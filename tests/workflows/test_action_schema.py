"""The schema that constrains a model's turns follows each tool's own argument schema,
within the agent's output limits; a real engine calls documents.ingest through it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
from engines import in_process, tiny_model_path_fixture  # noqa: F401 - fixtures
from workbench import (  # noqa: F401 - fixtures
    TINY_MODEL_OUTPUT,
    execute,
    home_fixture,
    janus_fixture,
    registry_fixture,
    runs_fixture,
    workflow_fixture,
    write,
)

from janus_stack.agents import AgentManifest, AgentRegistry, FunctionTool, Toolbox
from janus_stack.agents.actions import (
    GRAMMAR_BOUND,
    action_schema,
    decoding_schema,
    model_schema,
    output_limits,
)
from janus_stack.agents.budget import Meter, PriceTable
from janus_stack.agents.builtin import DocumentsIngest, builtin_tools
from janus_stack.agents.manifest import OutputLimits
from janus_stack.agents.runtime import AgentIO, AgentRunner
from janus_stack.config import AGENT_OUTPUT_ENV, load_settings
from janus_stack.context import Janus
from janus_stack.ops.inventory import list_documents
from janus_stack.slots.llm import LanguageModel
from janus_stack.slots.llm.types import Request, Usage
from janus_stack.urls import SlotURL
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec

WRITER = {"read": {"tenants": ["default"]}, "write": {"tenants": ["default"]}}
TOOLS = ["documents.ingest", "memory.remember", "memory.search", "objects.read"]


class OfferedFiles(DocumentsIngest):
    """documents.ingest offering a model only the given files (``model_parameters``), as a
    deployment narrows a tool to what an agent should reach; the call is the built-in's."""

    def __init__(self, files: list[str]) -> None:
        self.files = files

    def model_parameters(self, agent: AgentManifest) -> dict[str, Any]:
        # At most as many paths as there are files: a random model may repeat one until its
        # token limit (the prompt holds a temporary path, so each run draws other tokens).
        paths = {
            **self.parameters["properties"]["paths"],
            "items": {"enum": self.files},
            "maxItems": len(self.files),
        }
        return {**self.parameters, "properties": {"paths": paths}}


@pytest.fixture(name="offered")
def offered_fixture(home: Path) -> Path:
    return write(home / "docs" / "apollo.md", "# Apollo 8\n\nFrank Borman commanded Apollo 8.\n")


@pytest.fixture(name="toolbox")
def offering_toolbox_fixture(offered: Path) -> Toolbox:
    return Toolbox(
        OfferedFiles([str(offered)]) if tool.name == "documents.ingest" else tool
        for tool in builtin_tools()
    )


def agent(**fields: Any) -> AgentManifest:
    return AgentManifest.model_validate({"name": "probe", "instructions": "x", **fields})


def options(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["properties"]["action"]["const"]: o for o in schema["anyOf"]}


def admits(schema: dict[str, Any], turn: dict[str, Any]) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(turn)


def test_a_model_can_write_what_the_tools_take() -> None:
    defaults = OutputLimits()  # for real models
    schema = action_schema(agent(tools=TOOLS, memory=WRITER), Toolbox(builtin_tools()), defaults)
    offered = options(schema)
    assert sorted(offered) == sorted(["final", *TOOLS])
    paths = offered["documents.ingest"]["properties"]["arguments"]["properties"]["paths"]
    assert paths == {
        "type": "array",
        "items": {"type": "string", "minLength": 0, "maxLength": 2000},
        "minItems": 1,
        "maxItems": 50,
    }
    search = offered["memory.search"]["properties"]["arguments"]
    assert search["required"] == ["query"]
    assert search["properties"]["k"] == {"enum": list(range(1, 51))}
    assert "filters" not in search["properties"]  # a free-form map is the gate's business
    key = offered["objects.read"]["properties"]["arguments"]["properties"]["key"]
    assert key["pattern"].startswith("^[A-Za-z0-9_]")  # the tool's own shape

    ingest = {"action": "documents.ingest", "arguments": {"paths": ["a.md", "docs/b.md"]}}
    assert admits(schema, ingest)
    assert not admits(schema, {"action": "documents.ingest", "arguments": {"paths": []}})
    fact = "Frank Borman commanded Apollo 8, the first crewed flight around the Moon. " * 20
    assert admits(schema, {"action": "memory.remember", "arguments": {"text": fact}})
    answer = "Borman commanded it [1]; «Über» 東京 — see [2].\nDone."
    assert admits(schema, {"action": "final", "answer": answer})
    assert not admits(schema, {"action": "final", "answer": "x" * 4001})
    assert not admits(schema, {"action": "memory.search", "arguments": {"query": "q", "k": 0}})

    # A llama.cpp grammar cannot hold bounds this long: the model decodes without them
    # and the runtime checks them after the turn.
    decoding = decoding_schema(schema)
    assert (
        decoding != schema and "maxLength" not in options(decoding)["final"]["properties"]["answer"]
    )
    assert all(
        value <= GRAMMAR_BOUND for key, value in _walk(decoding) if key in ("maxLength", "maxItems")
    )
    assert admits(decoding, {"action": "final", "answer": "x" * 4001})


def _walk(schema: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _walk(item)


def test_limits_come_from_the_manifest_over_the_setting(tmp_path: Path) -> None:
    env = {"JANUS_HOME": str(tmp_path), AGENT_OUTPUT_ENV: TINY_MODEL_OUTPUT}
    defaults = OutputLimits.model_validate(load_settings(environ=env, cwd=tmp_path).agent_output)
    tight = output_limits(agent(), defaults)
    assert (tight.max_answer_chars, tight.max_argument_chars, tight.charset) == (240, 80, "basic")
    answer = options(action_schema(agent(), Toolbox(), defaults))["final"]["properties"]["answer"]
    assert answer == {"type": "string", "pattern": "^[A-Za-z0-9 ,.;:?!'()/_-]{1,240}$"}

    roomy = output_limits(agent(output={"charset": "unicode", "max_answer_chars": 1000}), defaults)
    assert (roomy.max_answer_chars, roomy.max_argument_chars, roomy.charset) == (
        1000,
        80,
        "unicode",
    )


def test_tools_a_model_cannot_fill_are_not_offered() -> None:
    def merge(table: dict[str, int], note: str = "") -> dict[str, int]:
        """Merge a table."""
        return table

    box = Toolbox([FunctionTool.wrap("table.merge", merge)])
    schema = action_schema(agent(tools=["table.merge"]), box, OutputLimits(), answer=False)
    assert list(options(schema)) == ["final"]  # its required `table` has no usable schema

    limits = OutputLimits.model_validate_json(TINY_MODEL_OUTPUT)
    point = {
        "type": "object",
        "properties": {"x": {"type": "number", "minimum": 0}, "label": {"type": "string"}},
        "required": ["x"],
    }
    assert model_schema({"type": "array", "items": point, "maxItems": 500}, limits) == {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "x": {"type": "number", "minimum": 0},
                "label": {"type": "string", "pattern": "^[A-Za-z0-9 ,.;:?!'()/_-]{1,80}$"},
            },
            "required": ["x"],
            "additionalProperties": False,
        },
        "minItems": 0,
        "maxItems": 50,
    }
    optional = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 3}, {"type": "null"}]}
    assert model_schema(optional, limits) == {"enum": [1, 2, 3]}


def test_a_real_engine_ingests_a_document_through_the_schema(
    home: Path,
    offered: Path,
    runs: Runs,
    janus: Janus,
    workflow: Callable[[str], WorkflowSpec],
    tiny_model_path: Path,
) -> None:
    model = {"provider": in_process(tiny_model_path), "tool_choice": "required"}
    write(
        home / "agents" / "librarian.yaml",
        f"""
        name: librarian
        instructions: Ingest the file you are given, then say what you did.
        model: {json.dumps(model)}
        tools: [documents.ingest]
        memory: {json.dumps(WRITER)}
        budget: {{max_steps: 2}}
        output: {{charset: unicode, max_answer_chars: 60}}
        """,
    )
    spec = workflow("""
        name: library
        steps: [{id: file, kind: agent, agent: librarian, input: "Ingest the Apollo notes."}]
    """)
    run = runs.store.run(execute(runs, spec))
    assert run.status == "done", run.error
    (call,) = runs.store.calls(run.id)
    assert (call["tool"], call["agent"], call["status"]) == (
        "documents.ingest",
        "librarian",
        "done",
    )
    documents = list_documents(janus, "default")
    assert [Path(d["source"]).name for d in documents] == ["apollo.md"]
    output = runs.store.steps(run.id)["file"].output
    assert output is not None and output["mode"] == "llm" and output["tool_calls"] == 1
    assert 1 <= len(output["text"]) <= 60  # the unicode answer, bounded by the manifest


def test_the_default_limits_decode_on_llama_cpp(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    registry: AgentRegistry,
    toolbox: Toolbox,
    workflow: Callable[[str], WorkflowSpec],
    tiny_model_path: Path,
) -> None:
    """Bounds as long as the defaults' used to overflow llama.cpp's grammar parser and kill
    the process; decoded without them, the random model's answer simply runs long."""
    monkeypatch.delenv(AGENT_OUTPUT_ENV)  # before the settings are read: the defaults
    model = {"provider": in_process(tiny_model_path), "max_output_tokens": 48}
    write(
        home / "agents" / "talker.yaml",
        f"""
        name: talker
        instructions: Answer briefly.
        model: {json.dumps(model)}
        tools: [memory.search]
        budget: {{max_steps: 2}}
        """,
    )
    spec = workflow("""
        name: talk
        steps: [{id: say, kind: agent, agent: talker, input: "Say something."}]
    """)
    with Janus(load_settings()) as janus:
        runs = Runs(janus, registry, toolbox)
        runs.register(janus.handlers)
        try:
            run = runs.store.run(execute(runs, spec))
            assert run.status == "budget_exceeded", run.error
            assert run.error is not None and "no final answer within max_steps=2" in run.error
            assert runs.store.steps(run.id)["say"].completion_tokens == 2 * 48
        finally:
            runs.engine.close()


class ScriptedModel(LanguageModel):
    """Answers each turn with the next scripted text and keeps the requests (a backend for
    the post-decoding check only: the grammar itself is exercised on llama.cpp above)."""

    backend: ClassVar[str] = "scripted"

    def __init__(self, answers: list[str]) -> None:
        super().__init__(SlotURL.parse("llm", "scripted://"))
        self.answers = answers
        self.requests: list[Request] = []

    @property
    def model(self) -> str:
        return "scripted"

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _generate(self, request: Request) -> Iterator[str | Usage]:
        self.requests.append(request)
        yield self.answers[len(self.requests) - 1]
        yield Usage(finish_reason="stop", model="scripted", prompt_tokens=10, completion_tokens=5)


def test_bounds_left_out_of_the_grammar_are_checked_after_the_turn() -> None:
    long, short = "x" * 700, "Borman [1]."
    turns = [json.dumps({"action": "final", "answer": text}) for text in (long, short)]
    with ScriptedModel(turns) as model:
        runner = AgentRunner(
            Toolbox(), PriceTable(), lambda _provider: model, output_defaults=OutputLimits()
        )
        talker = agent(model="scripted", output={"max_answer_chars": 600})
        result = runner.run(
            talker,
            "Who?",
            meter=Meter("agent talker", talker.budget),
            io=AgentIO(call_tool=lambda _name, _arguments: {}),
        )
    assert result.text == short
    first, second = model.requests
    assert first.json_schema is not None and "maxLength" not in json.dumps(first.json_schema)
    retry = second.messages[-1]["content"]
    assert retry == "answer: too long, at most 600 characters. Try again."
