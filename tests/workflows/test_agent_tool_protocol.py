"""An agent's native tool calls go back to the model in the OpenAI tool protocol.

After a native call, the conversation holds an assistant message with
``tool_calls`` (the function name offered, the call's id) and a ``tool``
message with the result; a turn sent without tools gets the same exchange
as plain messages, naming the tool as that turn's JSON schema does.
llama-cpp-python's server cannot make a native turn after a call (a turn
offering a tool and the answer asks ``required``, which it cannot do), so
the agent talks to a ``ReplayServer`` that plays calls recorded from the
real server (``chatml-function-calling``, tiny random GGUF) for what the
agent asked, and records every request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engines import tiny_model_path_fixture  # noqa: F401 - fixture
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

from conformance._llm_servers import (
    LlamaServer,
    ReplayServer,
    Script,
    data_event,
    event_json,
    record_stream,
    sse_events,
)
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec

Make = Callable[[str], WorkflowSpec]
REFUSED = Script(
    status=400, content_type="application/json", parts=[b'{"error": {"message": "recorded"}}']
)


@pytest.fixture(scope="module", name="calling_server")
def calling_server_fixture(
    tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    with LlamaServer(
        tiny_model_path, tmp_path_factory.mktemp("fc-log"), chat_format="chatml-function-calling"
    ) as server:
        yield server


@pytest.fixture(name="replay")
def replay_fixture() -> Iterator[ReplayServer]:
    server = ReplayServer(default=REFUSED)
    yield server
    server.close()


def run_doer(home: Path, runs: Runs, workflow: Make, provider: str) -> None:
    """The agent ``doer`` (one tool, a call required first, three turns) on one input."""
    manifest = {
        "name": "doer",
        "instructions": "You are doer.",
        "model": {"provider": provider, "tool_choice": "required"},
        "tools": ["test.effect"],
        "budget": {"max_steps": 3},
    }
    write(home / "agents" / "doer.yaml", json.dumps(manifest))
    spec = workflow("""
        name: doer
        steps: [{id: act, kind: agent, agent: doer, input: "Record one effect."}]
    """)
    execute(runs, spec)


def without_ids(stream: bytes) -> bytes:
    """``stream`` with the ids of its tool calls left out, as some servers send them."""
    events = []
    for event in sse_events(stream):
        body = event_json(event)
        for choice in (body or {}).get("choices", []):
            for call in (choice.get("delta") or {}).get("tool_calls") or []:
                call.pop("id", None)
        events.append(event if body is None else data_event(body))
    return b"".join(events)


def recorded_call(replay: ReplayServer, server: LlamaServer, *, ids: bool) -> bytes:
    """The real server's answer to the agent's first turn (captured by ``replay``, which
    refused it)."""
    asked: dict[str, Any] = {**replay.chat_requests[0], "model": "tiny"}
    asked.pop("stream_options", None)
    assert asked["tool_choice"] == {"type": "function", "function": {"name": "test_effect"}}
    stream = record_stream(server.base, asked)
    assert b'"tool_calls"' in stream
    return stream if ids else without_ids(stream)


@pytest.mark.parametrize("ids", [True, False], ids=["server-ids", "no-ids"])
def test_native_calls_go_back_in_the_tool_protocol(
    home: Path,
    runs: Runs,
    workflow: Make,
    calls: Calls,
    calling_server: LlamaServer,
    replay: ReplayServer,
    ids: bool,
) -> None:
    run_doer(home, runs, workflow, replay.url(retries="0"))  # refused: only its request is kept
    call = recorded_call(replay, calling_server, ids=ids)
    replay.requests.clear()
    replay.queue += [Script(parts=[call]), Script(parts=[call])]  # two native turns, then refused
    run_doer(home, runs, workflow, replay.url(retries="0"))
    assert len(calls.seen) == 2
    first, second, last = replay.chat_requests[:3]
    assert "tools" in first and "tools" in second and "tools" not in last

    exchange = second["messages"][2:]
    assert [m["role"] for m in exchange] == ["assistant", "tool"]
    assert exchange[0]["content"] == ""
    (made,) = exchange[0]["tool_calls"]
    assert made["type"] == "function" and made["function"]["name"] == "test_effect"
    arguments = json.loads(made["function"]["arguments"])
    assert arguments["label"] == calls.seen[0]["label"]
    if ids:  # the server's own id
        assert made["id"].startswith("call_") and made["id"] != "call_0_0"
    else:  # one made up from the turn and the call's place in it
        assert made["id"] == "call_0_0"
    assert exchange[1]["tool_call_id"] == made["id"]
    assert json.loads(exchange[1]["content"])["count"] == 1  # the tool's result

    # The schema turn: both exchanges as plain messages, under the tool's own name, as the
    # actions of that turn's schema are named.
    plain = last["messages"][2:]
    assert [m["role"] for m in plain] == ["assistant", "user"] * 2
    assert all(set(m) == {"role", "content"} for m in plain)
    assert json.loads(plain[0]["content"]) == {"action": "test.effect", "arguments": arguments}
    assert plain[1]["content"].startswith("Result of test.effect: {")
    assert json.loads(plain[3]["content"].removeprefix("Result of test.effect: "))["count"] == 2
