"""The action schema's choices as functions for native tool calling, and back: the same
argument schemas and bounds, OpenAI function names, the answer as the pseudo-tool ``final``."""

from __future__ import annotations

from typing import Any

from janus_stack.agents import AgentManifest, Toolbox
from janus_stack.agents.actions import (
    FINAL_TOOL,
    action_schema,
    decoding_schema,
    native_action,
    native_tools,
    offers_tools,
    system_prompt,
)
from janus_stack.agents.manifest import OutputLimits
from janus_stack.slots.llm.tools import TOOL_NAME, check_tools

LIMITS = OutputLimits.model_validate(
    {"max_answer_chars": 240, "max_argument_chars": 80, "charset": "basic"}
)


def manifest(**fields: Any) -> AgentManifest:
    return AgentManifest.model_validate({"name": "probe", "instructions": "x", **fields})


def test_every_choice_becomes_a_function_with_the_same_schema() -> None:
    toolbox = Toolbox.default(plugins=False)
    agent = manifest(tools=["memory.search", "memory.ask"])
    schema = decoding_schema(action_schema(agent, toolbox, LIMITS))
    tools, actions = native_tools(schema, toolbox)
    assert actions == {
        FINAL_TOOL: "final",
        "memory_search": "memory.search",
        "memory_ask": "memory.ask",
    }
    assert all(TOOL_NAME.match(t["name"]) for t in tools)
    check_tools(tools)  # what the llm slot accepts
    options = {o["properties"]["action"]["const"]: o for o in schema["anyOf"]}
    by_name = {t["name"]: t for t in tools}
    assert (
        by_name["memory_search"]["parameters"]
        == options["memory.search"]["properties"]["arguments"]
    )
    assert (
        by_name[FINAL_TOOL]["parameters"]["properties"]["answer"]
        == options["final"]["properties"]["answer"]
    )
    assert by_name["memory_ask"]["description"] == toolbox.get("memory.ask").description


def test_the_last_turn_and_a_required_first_turn_keep_their_choices() -> None:
    toolbox = Toolbox.default(plugins=False)
    agent = manifest(tools=["memory.search"])
    last, _ = native_tools(action_schema(agent, toolbox, LIMITS, tools=False), toolbox)
    first, _ = native_tools(action_schema(agent, toolbox, LIMITS, answer=False), toolbox)
    assert [t["name"] for t in last] == [FINAL_TOOL]
    assert [t["name"] for t in first] == ["memory_search"]
    assert not offers_tools(action_schema(agent, toolbox, LIMITS, tools=False))  # a schema turn
    assert offers_tools(action_schema(agent, toolbox, LIMITS))


def test_a_call_maps_back_to_the_same_action_dict() -> None:
    actions = {FINAL_TOOL: "final", "memory_search": "memory.search"}
    call = native_action([("memory_search", {"query": "cats", "k": 2})], "", actions)
    assert call == {"action": "memory.search", "arguments": {"query": "cats", "k": 2}}
    answer = native_action([(FINAL_TOOL, {"answer": "Cats."})], "", actions)
    assert answer == {"action": "final", "answer": "Cats."}
    assert native_action([], " Text. ", actions) == {"action": "final", "answer": "Text."}
    assert native_action([], "Text.", {"memory_search": "memory.search"}) is None


def test_the_native_prompt_names_the_functions() -> None:
    toolbox = Toolbox.default(plugins=False)
    agent = manifest(tools=["memory.search"])
    prompt = system_prompt(agent, toolbox, LIMITS, native=True)
    assert "- memory_search(" in prompt and "JSON only" not in prompt
    assert "JSON only" in system_prompt(agent, toolbox, LIMITS)
