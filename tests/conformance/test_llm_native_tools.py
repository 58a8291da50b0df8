"""Tool calling in the llm slot, against real llama.cpp servers (tiny random GGUF).

What the real server does (llama-cpp-python 0.3, found by these tests):

* any chat format: a *named* ``tool_choice`` is a real tool call, its
  arguments decoded under a grammar of the tool's parameters, streamed as
  ``delta.tool_calls`` fragments or answered whole as ``message.tool_calls``;
* ``--chat_format chatml-function-calling``: ``auto`` lets the model choose
  (under a grammar) between a call and a message, but the message's
  grammar admits only the end of the turn (an empty answer) and a call
  chosen in a stream fails ("Automatic streaming tool choice is not
  supported": an empty 200 stream); ``required`` fails the same way (HTTP
  500 unstreamed);
* the default format ignores ``tools`` under ``auto``/``required`` and
  answers in text: nothing rejects ``tools`` with a 4xx.

So the openai backend's ``tools=auto`` falls back to the JSON-schema path
when the server ignores tools (a forced choice answered with text, an empty
stream) — tested on the real servers — or rejects them with a 4xx, which
no local server does: that case is played by the ``ReplayServer`` (a raw
HTTP server in a thread) with answers recorded from the real server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from _llm_servers import (
    LlamaServer,
    ReplayServer,
    Script,
    record_stream,
)
from structlog.testing import capture_logs

from janus_stack.errors import InvalidInputError
from janus_stack.slots import llm
from janus_stack.slots.llm import Completion, Finished, ModelOutputError, TextDelta
from janus_stack.slots.llm.chain import chain_url
from janus_stack.slots.llm.tiny_gguf import write_tiny_gguf
from janus_stack.slots.llm.tools import check_tools, tools_schema

USER = [{"role": "user", "content": "Find what the memory says about cats."}]
LOOKUP: dict[str, Any] = {
    "name": "lookup",
    "description": "Search the memory.",
    "parameters": {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 24},
            "k": {"enum": [1, 2, 3]},
        },
        "required": ["query", "k"],
        "additionalProperties": False,
    },
}
NOTE: dict[str, Any] = {
    "name": "note",
    "description": "Write a note.",
    "parameters": {
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 16}},
        "required": ["text"],
        "additionalProperties": False,
    },
}
TOOLS = [LOOKUP, NOTE]


@pytest.fixture(scope="module", name="tiny")
def tiny_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("llama_cpp", reason="the llm extra (llama-cpp-python) is not installed")
    return write_tiny_gguf(tmp_path_factory.mktemp("tools") / "tiny.gguf")


def _server(tiny: Path, log_dir: Path, chat_format: str | None) -> Iterator[LlamaServer]:
    with LlamaServer(tiny, log_dir, chat_format=chat_format) as server:
        yield server


@pytest.fixture(scope="module", name="calling_server")
def calling_server_fixture(
    tiny: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """The real server with a function-calling chat format."""
    yield from _server(tiny, tmp_path_factory.mktemp("fc"), "chatml-function-calling")


@pytest.fixture(scope="module", name="plain_server")
def plain_server_fixture(
    tiny: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """The real server with the GGUF's own chat template."""
    yield from _server(tiny, tmp_path_factory.mktemp("plain"), None)


@pytest.fixture(name="replay")
def replay_fixture() -> Iterator[ReplayServer]:
    server = ReplayServer()
    yield server
    server.close()


def _finished(events: Iterator[Any]) -> tuple[list[str], Completion]:
    deltas: list[str] = []
    done: list[Completion] = []
    for event in events:
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            assert isinstance(event, Finished)
            done.append(event.completion)
    assert len(done) == 1
    return deltas, done[0]


def _valid_call(completion: Completion, tool: dict[str, Any]) -> dict[str, Any]:
    assert len(completion.tool_calls) == 1, completion
    call = completion.tool_calls[0]
    assert call.name == tool["name"]
    jsonschema.validate(call.arguments, tool["parameters"])
    return call.arguments


@pytest.mark.parametrize("fmt", ["calling", "plain"])
def test_a_named_tool_choice_is_a_native_call_streamed_and_whole(
    fmt: str, request: pytest.FixtureRequest
) -> None:
    server: LlamaServer = request.getfixturevalue(f"{fmt}_server")
    with llm.open(server.url) as model:
        assert model.native_tools
        deltas, streamed = _finished(
            model.stream(USER, max_tokens=64, tools=TOOLS, tool_choice="lookup")
        )
        assert deltas == []  # a call is not text
        assert streamed.tool_mode == "native" and streamed.finish_reason == "tool_calls"
        assert streamed.tool_calls[0].id.startswith("call_")
        arguments = _valid_call(streamed, LOOKUP)
        whole = model.complete(USER, max_tokens=64, tools=TOOLS, tool_choice="lookup")
        assert whole.tool_mode == "native" and _valid_call(whole, LOOKUP) == arguments
        assert whole.completion_tokens > 0  # estimated from the arguments: no usage streamed
        assert model.native_tools  # nothing was refused


def test_the_whole_json_answer_of_a_real_server_is_read_too(
    calling_server: LlamaServer, replay: ReplayServer
) -> None:
    """``message.tool_calls`` of a non-streamed answer, recorded from the real server and
    replayed to a client that asked for a stream (servers may ignore ``stream: true``)."""
    body = {
        "model": "tiny",
        "messages": USER,
        "max_tokens": 64,
        "temperature": 0,
        "stream": False,
        "tools": [{"type": "function", "function": LOOKUP}],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
    }
    whole = record_stream(calling_server.base, body)
    assert b'"tool_calls"' in whole
    replay.default = Script(content_type="application/json", parts=[whole])
    with llm.open(replay.url()) as model:
        completion = model.complete(USER, max_tokens=64, tools=TOOLS, tool_choice="lookup")
    assert completion.tool_mode == "native" and completion.tool_calls
    _valid_call(completion, LOOKUP)
    assert completion.prompt_tokens == json.loads(whole)["usage"]["prompt_tokens"]
    sent = replay.chat_requests[0]
    assert [t["function"]["name"] for t in sent["tools"]] == ["lookup", "note"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}


def test_auto_on_a_calling_server_is_native_and_may_answer_nothing(
    calling_server: LlamaServer,
) -> None:
    """The tiny model chooses the message, which that server's grammar leaves empty: a
    valid ``auto`` answer (text, no call), so nothing falls back."""
    with llm.open(calling_server.url) as model:
        completion = model.complete(USER, max_tokens=32, tools=TOOLS, tool_choice="auto")
        assert completion.tool_mode == "native" and model.native_tools
        assert completion.tool_calls == () and completion.text == ""


def test_a_server_that_ignores_tools_falls_back_to_the_schema_once(
    plain_server: LlamaServer,
) -> None:
    """The default chat format answers ``required`` in text: the first text piece gives it
    away before the caller sees it, and the instance uses the JSON schema from then on."""
    with llm.open(plain_server.url) as model, capture_logs() as logs:
        deltas, first = _finished(
            model.stream(USER, max_tokens=96, tools=TOOLS, tool_choice="required")
        )
        assert not model.native_tools
        assert first.tool_mode == "schema" and first.tool_calls
        tool = LOOKUP if first.tool_calls[0].name == "lookup" else NOTE
        _valid_call(first, tool)
        assert json.loads("".join(deltas))["name"] == tool["name"]  # only the emulated JSON
        second = model.complete(USER, max_tokens=96, tools=TOOLS, tool_choice="note")
        assert second.tool_mode == "schema"
        _valid_call(second, NOTE)
    fallbacks = [e for e in logs if e["event"] == "llm.tools_fallback"]
    assert len(fallbacks) == 1 and "tool_choice=required" in fallbacks[0]["reason"]


def test_required_on_a_calling_server_falls_back_to_the_schema(
    calling_server: LlamaServer,
) -> None:
    """chatml-function-calling cannot do ``required`` (an empty stream)."""
    with llm.open(calling_server.url) as model:
        completion = model.complete(USER, max_tokens=96, tools=TOOLS, tool_choice="required")
        assert completion.tool_mode == "schema" and completion.tool_calls
        assert not model.native_tools


def test_a_server_rejecting_tools_with_a_4xx_falls_back_and_remembers(
    plain_server: LlamaServer, replay: ReplayServer
) -> None:
    """No local server rejects ``tools``; the replay server says what a strict one would,
    then plays the real server's answer to the emulating JSON schema."""
    schema = tools_schema(check_tools(TOOLS), "lookup")
    answer = record_stream(
        plain_server.base,
        {
            "model": "tiny",
            "messages": USER,
            "max_tokens": 96,
            "temperature": 0,
            "stream": True,
            "response_format": {"type": "json_object", "schema": schema},
        },
    )
    refusal = json.dumps({"error": {"message": "'tools' is not supported by this model"}})
    replay.queue.append(
        Script(status=400, content_type="application/json", parts=[refusal.encode()])
    )
    replay.default = Script(parts=[answer])
    with llm.open(replay.url(json="object")) as model:
        first = model.complete(USER, max_tokens=96, tools=TOOLS, tool_choice="lookup")
        second = model.complete(USER, max_tokens=96, tools=TOOLS, tool_choice="lookup")
    for completion in (first, second):
        assert completion.tool_mode == "schema"
        _valid_call(completion, LOOKUP)
    sent = replay.chat_requests
    assert len(sent) == 3  # refused, emulated, and emulated straight away the second time
    assert "tools" in sent[0] and all("tools" not in body for body in sent[1:])
    assert all(body["response_format"]["schema"] == schema for body in sent[1:])


def test_tools_off_never_sends_them(plain_server: LlamaServer) -> None:
    with llm.open(plain_server.url + "&tools=off") as model:
        assert not model.native_tools
        completion = model.complete(USER, max_tokens=96, tools=TOOLS, tool_choice="note")
    assert completion.tool_mode == "schema"
    _valid_call(completion, NOTE)


def test_in_process_llamacpp_and_chains_pass_tools_through(
    tiny: Path, calling_server: LlamaServer
) -> None:
    in_process = f"llamacpp://{tiny}?n_ctx=4096&threads=1&seed=0"
    with llm.open(in_process) as model:
        assert not model.native_tools
        completion = model.complete(USER, max_tokens=96, tools=TOOLS, tool_choice="lookup")
        assert completion.tool_mode == "schema"
        _valid_call(completion, LOOKUP)
    with llm.open(chain_url(calling_server.url)) as chain:
        assert chain.native_tools
        completion = chain.complete(USER, max_tokens=64, tools=TOOLS, tool_choice="note")
        assert completion.tool_mode == "native"
        _valid_call(completion, NOTE)
    with llm.open(chain_url(calling_server.url, in_process)) as mixed:
        assert not mixed.native_tools  # one provider cannot: the chain emulates for all
        completion = mixed.complete(USER, max_tokens=96, tools=TOOLS, tool_choice="note")
        assert completion.tool_mode == "schema"
        _valid_call(completion, NOTE)


@pytest.mark.parametrize(
    ("tools", "choice", "schema", "message"),
    [
        ([{"name": "memory.search"}], None, None, "a name is 1-64"),
        ([LOOKUP, LOOKUP], None, None, "listed twice"),
        ([{**LOOKUP, "parameters": {"type": "string"}}], None, None, "type object"),
        (TOOLS, "missing", None, "accepted: auto, required"),
        ([], "auto", None, "tools is empty"),
        (TOOLS, None, {"type": "object"}, "not both"),
    ],
)
def test_bad_tools_are_refused_at_the_call(
    plain_server: LlamaServer,
    tools: list[dict[str, Any]],
    choice: str | None,
    schema: dict[str, Any] | None,
    message: str,
) -> None:
    with llm.open(plain_server.url) as model, pytest.raises(InvalidInputError, match=message):
        model.stream(USER, max_tokens=8, tools=tools, tool_choice=choice, json_schema=schema)


def test_a_forced_choice_without_a_call_is_a_model_output_error(
    plain_server: LlamaServer,
) -> None:
    """``tools=native`` pins native calling: a server that answers in text is not retried
    elsewhere, and ``complete`` gives up after its JSON retries."""
    with llm.open(plain_server.url + "&tools=native&json_retries=0") as model:
        with pytest.raises(ModelOutputError, match="called no tool"):
            model.complete(USER, max_tokens=8, tools=TOOLS, tool_choice="required")
        assert model.native_tools
