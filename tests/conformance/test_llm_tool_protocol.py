"""The OpenAI tool protocol in a conversation (assistant ``tool_calls``, ``tool`` results).

A tool-calling server gets it as it is when the request offers ``tools``;
every request sent without native tools gets it rewritten as plain
messages (``plain_messages``): the in-process engine, an OpenAI server
asked without ``tools``. The real engine is llama-cpp-python's server and
in-process ``Llama`` with the tiny random GGUF: the answers are gibberish,
the plumbing is what is tested.

What llama-cpp-python's server (0.3) does with the protocol, found by
these tests and by measuring its ``prompt_tokens``: every chat format
accepts it (HTTP 200, with and without ``tools``, streamed and whole), but
none renders all of it. The default format (the GGUF's own Jinja
template) renders the ``tool`` result's content and drops the call (an
empty assistant content); ``chatml-function-calling`` renders the call
(``functions.NAME:`` and its arguments) and drops the result's content;
``chatml`` renders neither. Servers whose templates know the protocol
(vLLM, Ollama, ``llama-server --jinja``) render both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from _llm_servers import LlamaServer, ReplayServer, Script, record_stream

from conftest import free_port
from janus_stack.errors import InvalidInputError
from janus_stack.slots import llm
from janus_stack.slots.llm.chain import chain_url
from janus_stack.slots.llm.messages import check_messages, estimate_prompt_tokens
from janus_stack.slots.llm.tiny_gguf import write_tiny_gguf
from janus_stack.slots.llm.tools import plain_messages

LOOKUP: dict[str, Any] = {
    "name": "lookup",
    "description": "Search the memory.",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 24}},
        "required": ["query"],
        "additionalProperties": False,
    },
}


def call(call_id: str = "call_0_0", name: str = "lookup", arguments: str = "{}") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def conversation(arguments: str = '{"query": "cats"}', result: str = '{"hits": 1}') -> list[Any]:
    """A user question, the model's call of ``lookup``, and the call's result."""
    return [
        {"role": "system", "content": "You call tools."},
        {"role": "user", "content": "Find what the memory says about cats."},
        {"role": "assistant", "content": "", "tool_calls": [call(arguments=arguments)]},
        {"role": "tool", "tool_call_id": "call_0_0", "content": result},
    ]


# -- validation ---------------------------------------------------------------------


def test_the_protocol_is_accepted_and_copied() -> None:
    messages = conversation()
    messages[2]["content"] = None  # what OpenAI clients send beside tool_calls
    checked = check_messages(messages)
    assert checked[2] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [call(arguments='{"query": "cats"}')],
    }
    assert checked[3] == {"role": "tool", "content": '{"hits": 1}', "tool_call_id": "call_0_0"}
    messages[2]["tool_calls"][0]["function"]["name"] = "changed"
    assert checked[2]["tool_calls"][0]["function"]["name"] == "lookup"  # a copy


def test_a_message_holding_only_a_call_is_not_empty() -> None:
    only_a_call = [{"role": "assistant", "content": "", "tool_calls": [call()]}]
    assert len(check_messages(only_a_call)) == 1


@pytest.mark.parametrize(
    ("message", "match"),
    [
        ({"role": "user", "content": "x", "tool_calls": [call()]}, r"#1 \(user\) has tool_calls"),
        ({"role": "tool", "content": "x", "tool_calls": [call()]}, r"#1 \(tool\) has tool_calls"),
        (
            {"role": "assistant", "content": "", "tool_calls": []},
            "#1 tool_calls must be a non-empty",
        ),
        (
            {"role": "assistant", "content": "", "tool_calls": call()},
            "#1 tool_calls must be a non-empty",
        ),
        (
            {"role": "assistant", "content": "", "tool_calls": ["x"]},
            r"#1 tool_calls\[0\] must be a dict",
        ),
        (
            {"role": "assistant", "content": "", "tool_calls": [{"id": "a", "type": "function"}]},
            r"#1 tool_calls\[0\] must be a dict with id, type and a function",
        ),
        (
            {"role": "assistant", "content": "", "tool_calls": [call(call_id="")]},
            r"tool_calls\[0\]\.id",
        ),
        (
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [call(), {**call(), "type": "code"}],
            },
            r"#1 tool_calls\[1\]\.type is 'code'",
        ),
        (
            {"role": "assistant", "content": "", "tool_calls": [call(name="")]},
            r"tool_calls\[0\]\.function\.name must be a non-empty str",
        ),
        (
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{**call(), "function": {"name": "f", "arguments": {}}}],
            },
            r"tool_calls\[0\]\.function\.arguments must be a str .* not dict",
        ),
        ({"role": "assistant", "content": None}, r"#1 \(assistant\) has content of type NoneType"),
        ({"role": "tool", "content": "found"}, r"#1 \(tool\) has no tool_call_id"),
        ({"role": "user", "content": "x", "tool_call_id": "a"}, r"#1 \(user\) has tool_call_id"),
    ],
)
def test_a_malformed_protocol_message_is_named(message: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        check_messages([{"role": "user", "content": "Hello"}, message])


def test_the_estimate_of_a_prompt_counts_the_calls() -> None:
    short = estimate_prompt_tokens(check_messages(conversation(arguments="{}")))
    long = estimate_prompt_tokens(
        check_messages(conversation(arguments=json.dumps({"q": "x" * 400})))
    )
    assert long >= short + 100


# -- the plain rewriting -----------------------------------------------------------------


def test_plain_messages_write_calls_as_json_and_results_as_user_messages() -> None:
    checked = check_messages(
        [
            *conversation(),
            {
                "role": "assistant",
                "content": "Two more.",
                "tool_calls": [call("c2", "note", '{"text": "hi"}'), call("c3", "raw", "not json")],
            },
            {"role": "tool", "tool_call_id": "c3", "content": "done"},
            {"role": "tool", "tool_call_id": "unknown", "name": "named", "content": "a"},
            {"role": "tool", "tool_call_id": "unknown", "content": "b"},
        ]
    )
    plain = plain_messages(checked)
    assert plain[:2] == checked[:2]
    assert plain[2] == {
        "role": "assistant",
        "content": '{"action": "lookup", "arguments": {"query": "cats"}}',
    }
    assert plain[3] == {"role": "user", "content": 'Result of lookup: {"hits": 1}'}
    assert plain[4]["content"].splitlines() == [
        "Two more.",
        '{"action": "note", "arguments": {"text": "hi"}}',
        '{"action": "raw", "arguments": "not json"}',
    ]
    assert [m["content"] for m in plain[5:]] == [
        "Result of raw: done",
        "Result of named: a",
        "Result of unknown: b",
    ]
    assert all(set(m) <= {"role", "content", "name"} for m in plain)
    assert check_messages(plain) == plain  # valid for any backend


def test_plain_messages_leave_a_conversation_without_the_protocol_alone() -> None:
    checked = check_messages([{"role": "user", "content": "Hi", "name": "ann"}])
    assert plain_messages(checked) == checked


# -- real engines -------------------------------------------------------------------------


@pytest.fixture(scope="module", name="tiny")
def tiny_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("llama_cpp", reason="the llm extra (llama-cpp-python) is not installed")
    return write_tiny_gguf(tmp_path_factory.mktemp("protocol") / "tiny.gguf")


@pytest.fixture(scope="module", name="server", params=["default", "chatml-function-calling"])
def server_fixture(
    request: pytest.FixtureRequest, tiny: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    fmt = None if request.param == "default" else request.param
    with LlamaServer(tiny, tmp_path_factory.mktemp("server-log"), chat_format=fmt) as server:
        yield server


def test_a_real_server_takes_the_protocol_with_and_without_tools(server: LlamaServer) -> None:
    with llm.open(server.url) as model:
        called = model.complete(conversation(), max_tokens=64, tools=[LOOKUP], tool_choice="lookup")
        assert called.tool_mode == "native" and model.native_tools
        assert len(called.tool_calls) == 1
        jsonschema.validate(called.tool_calls[0].arguments, LOOKUP["parameters"])
        answered = model.complete(conversation(), max_tokens=8)  # sent as plain messages
        assert answered.completion_tokens > 0 and answered.text
    with llm.open(server.url + "&tools=off") as emulating:
        emulated = emulating.complete(
            conversation(), max_tokens=64, tools=[LOOKUP], tool_choice="lookup"
        )
        assert emulated.tool_mode == "schema" and emulated.tool_calls


def test_the_openai_backend_sends_the_protocol_only_with_tools(
    server: LlamaServer, replay: ReplayServer
) -> None:
    """What goes on the wire, replaying answers recorded from the real server."""
    tools_body = {
        "model": "tiny",
        "messages": conversation(),
        "max_tokens": 64,
        "temperature": 0,
        "stream": True,
        "tools": [{"type": "function", "function": LOOKUP}],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
    }
    text_body = {**tools_body, "max_tokens": 8}
    del text_body["tools"], text_body["tool_choice"]
    tool_call = record_stream(server.base, tools_body)
    replay.queue.append(Script(parts=[tool_call]))
    replay.default = Script(parts=[record_stream(server.base, text_body)])
    with llm.open(replay.url()) as model:
        called = model.complete(conversation(), max_tokens=64, tools=[LOOKUP], tool_choice="lookup")
        assert called.tool_mode == "native" and called.tool_calls
        model.complete(conversation(), max_tokens=8)
    replay.queue.append(Script(parts=[tool_call]))
    with llm.open(replay.url(tool_results="plain")) as plain:
        called = plain.complete(conversation(), max_tokens=64, tools=[LOOKUP], tool_choice="lookup")
        assert called.tool_mode == "native" and called.tool_calls
    with_tools, without, plain_with_tools = replay.chat_requests
    assert with_tools["messages"] == list(check_messages(conversation()))
    assert without["messages"] == list(plain_messages(check_messages(conversation())))
    assert "tools" not in without
    assert plain_with_tools["messages"] == without["messages"] and plain_with_tools["tools"]


@pytest.fixture(name="replay")
def replay_fixture() -> Iterator[ReplayServer]:
    server = ReplayServer()
    yield server
    server.close()


def test_the_in_process_engine_gets_plain_messages(tiny: Path) -> None:
    """Its prompt token counts are exact: the call's arguments reach the prompt only because
    they were rewritten into the assistant's content (the GGUF's template prints content)."""
    url = f"llamacpp://{tiny}?n_ctx=4096&threads=1&seed=0"
    long_arguments = json.dumps({"query": "cats " * 40})
    with llm.open(url) as model:
        short = model.complete(conversation(), max_tokens=4)
        long = model.complete(conversation(arguments=long_arguments), max_tokens=4)
        assert not short.tokens_estimated and long.prompt_tokens >= short.prompt_tokens + 40
        emulated = model.complete(
            conversation(), max_tokens=64, tools=[LOOKUP], tool_choice="lookup"
        )
        assert emulated.tool_mode == "schema" and emulated.tool_calls
    dead = f"openai+http://127.0.0.1:{free_port()}/v1?model=x&retries=0&connect_timeout=1"
    with llm.open(chain_url(dead, url)) as chain:
        answered = chain.complete(conversation(arguments=long_arguments), max_tokens=4)
        assert answered.provider.startswith("llamacpp://") and answered.fallbacks
        assert answered.prompt_tokens == long.prompt_tokens
