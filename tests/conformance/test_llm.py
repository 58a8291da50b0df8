"""Conformance of the llm slot over every backend, against a real llama.cpp engine.

The suite writes a tiny random-weight llama GGUF (``tiny_gguf``, ~0.3 MB, no
download) and serves it with llama-cpp-python's OpenAI-compatible server on
127.0.0.1. The same contract tests run over ``openai+http://`` (that
server), ``llamacpp://`` (the same file in process) and ``chain://`` (a dead
server and ``none://`` first, then the real server). The answers are
gibberish; the plumbing is what is tested: streaming, token counts and
timings, stop strings, JSON output, timeouts, a server killed mid-stream,
fallbacks and bad input.

Protocol edge cases the real server does not produce on demand (empty and
role-only chunks, usage in the last chunk, cut or stalled streams, malformed
JSON, error statuses) are served by ``ReplayServer``, which replays the SSE
bytes recorded from the real server earlier in this session, mutated per
test (see ``_llm_servers``).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _llm_servers import (
    LlamaServer,
    ReplayServer,
    Script,
    data_event,
    event_json,
    record_stream,
    sse_events,
)
from structlog.testing import capture_logs

from conftest import free_port, service_missing
from janus_stack.config import load_settings
from janus_stack.context import Janus
from janus_stack.errors import (
    ClosedError,
    ConfigError,
    InvalidInputError,
    SlotUnavailableError,
    SlotURLError,
)
from janus_stack.ops.doctor import check_slot
from janus_stack.slots import llm
from janus_stack.slots.llm import (
    Completion,
    Finished,
    LanguageModel,
    LLMProtocolError,
    LLMTimeoutError,
    LLMUnavailableError,
    ModelOutputError,
    StreamInterruptedError,
    TextDelta,
)
from janus_stack.slots.llm.chain import chain_url
from janus_stack.slots.llm.tiny_gguf import write_tiny_gguf

USER = [{"role": "user", "content": "Tell me about the Apollo program."}]
SCHEMA = {
    "type": "object",
    "properties": {"tool": {"enum": ["search", "answer"]}, "ok": {"type": "boolean"}},
    "required": ["tool", "ok"],
    "additionalProperties": False,
}


def _require_engine() -> None:
    for module, package in (("llama_cpp", "llama-cpp-python"), ("gguf", "gguf")):
        if importlib.util.find_spec(module) is None:
            service_missing(f"{package} is not installed (pip install -e '.[test]')")


# -- fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require_engine()
    return write_tiny_gguf(tmp_path_factory.mktemp("llm") / "tiny.gguf")


@pytest.fixture(scope="session")
def llama_server(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    with LlamaServer(tiny_model, tmp_path_factory.mktemp("llama-server")) as server:
        server.recorded = record_stream(  # first, so no other test's load shapes it
            server.base,
            {"model": "tiny", "messages": USER, "max_tokens": 12, "temperature": 0, "stream": True},
        )
        yield server


@pytest.fixture(scope="session")
def recorded(llama_server: LlamaServer) -> list[bytes]:
    """SSE events of a real streamed answer, as the llama.cpp server sent them."""
    events = sse_events(llama_server.recorded)
    assert events[-1].strip() == b"data: [DONE]"
    return events


def _llamacpp_url(tiny_model: Path) -> str:
    return f"llamacpp://{tiny_model}?n_ctx=4096&threads=1&seed=0"


def _dead_url() -> str:
    return f"openai+http://127.0.0.1:{free_port()}/v1?model=x&retries=0&connect_timeout=1"


@pytest.fixture(params=["openai", "llamacpp", "chain"])
def model(
    request: pytest.FixtureRequest, llama_server: LlamaServer, tiny_model: Path
) -> Iterator[LanguageModel]:
    url = {
        "openai": llama_server.url,
        "llamacpp": _llamacpp_url(tiny_model),
        "chain": chain_url(_dead_url(), "none://", llama_server.url),
    }[request.param]
    with llm.open(url) as opened:
        yield opened


@pytest.fixture(autouse=True)
def _test_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TEST_KEY", "sk-secret")


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    server = ReplayServer()
    yield server
    server.close()


def _collect(events: Iterator[Any]) -> tuple[list[str], Completion]:
    deltas: list[str] = []
    finished: list[Completion] = []
    for event in events:
        if isinstance(event, TextDelta):
            assert not finished, "a delta came after Finished"
            deltas.append(event.text)
        else:
            assert isinstance(event, Finished)
            finished.append(event.completion)
    assert len(finished) == 1
    return deltas, finished[0]


# -- the contract, over every backend ---------------------------------------------------


def test_stream_yields_deltas_then_one_finished(model: LanguageModel) -> None:
    deltas, completion = _collect(model.stream(USER, max_tokens=16))
    assert deltas and all(deltas)
    assert "".join(deltas) == completion.text
    assert completion.finish_reason == "length"  # the tiny model never ends by itself
    assert completion.completion_tokens > 0  # llama.cpp may sample a few more (partial UTF-8)
    assert completion.prompt_tokens > 0
    assert completion.time_to_first_token_s is not None
    assert 0 <= completion.time_to_first_token_s <= completion.latency_s
    assert completion.provider and completion.model


def test_complete_is_the_stream_collected_and_greedy_is_deterministic(
    model: LanguageModel,
) -> None:
    first = model.complete(USER, max_tokens=12)
    again = model.complete(USER, max_tokens=12)
    _, streamed = _collect(model.stream(USER, max_tokens=12))
    assert first.text == again.text == streamed.text
    assert first.completion_tokens == streamed.completion_tokens


def test_stop_string_ends_the_answer(model: LanguageModel) -> None:
    full = model.complete(USER, max_tokens=24).text
    cut = next(
        p
        for p in range(4, len(full) - 2)
        if full[p : p + 2].strip() and full.find(full[p : p + 2]) == p
    )
    stopped = model.complete(USER, max_tokens=24, stop=[full[cut : cut + 2]])
    assert stopped.finish_reason == "stop"
    assert stopped.text == full[:cut]


def test_json_schema_output_is_parsed_and_valid(model: LanguageModel) -> None:
    completion = model.complete(USER, max_tokens=48, json_schema=SCHEMA)
    assert completion.data == json.loads(completion.text)
    assert completion.data["tool"] in ("search", "answer")
    assert isinstance(completion.data["ok"], bool)
    _, streamed = _collect(model.stream(USER, max_tokens=48, json_schema=SCHEMA))
    assert streamed.data == completion.data


def test_tool_and_system_messages_are_accepted(model: LanguageModel) -> None:
    messages = [
        {"role": "system", "content": "You call tools."},
        {"role": "user", "content": "Search for Apollo 8."},
        {"role": "assistant", "content": '{"tool": "search"}'},
        {"role": "tool", "content": "Apollo 8 orbited the Moon.", "tool_call_id": "call_1"},
    ]
    assert model.complete(messages, max_tokens=4).completion_tokens > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"messages": []}, "messages is empty"),
        ({"messages": "hello"}, "must be a list"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role 'wizard'"),
        ({"messages": [{"role": "user"}]}, "content of type NoneType"),
        ({"messages": [{"role": "user", "content": "x", "colour": "red"}]}, "unknown key"),
        ({"messages": [{"role": "user", "content": "  "}]}, "every message is empty"),
        ({"max_tokens": 0}, "max_tokens=0 is out of range"),
        ({"max_tokens": 10**9}, "out of range"),
        ({"max_tokens": True}, "max_tokens must be an int"),
        ({"max_tokens": "8"}, "max_tokens must be an int"),
        ({"temperature": -1}, "temperature"),
        ({"stop": [""]}, "stop must hold"),
        ({"stop": 5}, "stop must be"),
        ({"json_schema": {"type": "wat"}}, "not a valid JSON Schema"),
        ({"json_schema": "object"}, "json_schema must be a dict"),
        ({"timeout": 0}, "timeout must be a positive"),
    ],
)
def test_bad_input_is_refused_at_the_call(
    model: LanguageModel, kwargs: dict[str, Any], match: str
) -> None:
    call: dict[str, Any] = {"messages": USER, "max_tokens": 8, **kwargs}
    messages = call.pop("messages")
    with pytest.raises(InvalidInputError, match=match):
        model.complete(messages, **call)
    with pytest.raises(InvalidInputError, match=match):
        model.stream(messages, **call)  # raised at the call, not at the first next()


def test_use_after_close_is_refused(model: LanguageModel) -> None:
    model.close()
    with pytest.raises(ClosedError):
        model.complete(USER, max_tokens=4)


def test_probe_passes(model: LanguageModel) -> None:
    model.probe()


def test_call_timeout_mid_answer_raises_with_the_partial_text(model: LanguageModel) -> None:
    deltas: list[str] = []
    with pytest.raises(LLMTimeoutError) as caught:
        for event in model.stream(USER, max_tokens=3000, timeout=1.0):
            if isinstance(event, TextDelta):
                deltas.append(event.text)
    assert caught.value.partial == "".join(deltas)
    assert "llm slot" in str(caught.value)
    assert model.complete(USER, max_tokens=4).completion_tokens > 0  # still usable


def test_every_answer_is_logged_with_its_numbers(model: LanguageModel) -> None:
    with capture_logs() as logs:
        completion = model.complete(USER, max_tokens=6)
    line = next(entry for entry in logs if entry["event"] == "llm.completion")
    assert line["completion_tokens"] == completion.completion_tokens
    assert line["prompt_tokens"] == completion.prompt_tokens
    assert line["ttft_s"] == completion.time_to_first_token_s
    assert line["latency_s"] > 0


# -- backend specifics -------------------------------------------------------------------


def test_engine_counts_tokens_and_the_server_gets_estimates(
    llama_server: LlamaServer, tiny_model: Path
) -> None:
    with llm.open(llama_server.url) as remote, llm.open(_llamacpp_url(tiny_model)) as local:
        served = remote.complete(USER, max_tokens=12)
        in_process = local.complete(USER, max_tokens=12)
    # Same file, same template, greedy: the same start (the server's default
    # repeat penalty makes the answers part later).
    assert served.text[:8] == in_process.text[:8]
    assert not in_process.tokens_estimated
    assert in_process.completion_tokens >= 12
    assert in_process.prompt_tokens > 10
    assert served.tokens_estimated  # llama-cpp-python's server sends no usage when streaming


def test_server_killed_mid_stream_raises_with_the_partial_text(
    tiny_model: Path, tmp_path: Path
) -> None:
    deltas: list[str] = []
    with (
        LlamaServer(tiny_model, tmp_path) as server,
        llm.open(server.url) as model,
        pytest.raises(StreamInterruptedError) as caught,
    ):
        for event in model.stream(USER, max_tokens=3500):
            if isinstance(event, TextDelta):
                deltas.append(event.text)
                if len(deltas) == 1:
                    server.kill()
    assert deltas
    assert caught.value.partial == "".join(deltas)
    assert f"127.0.0.1:{server.port}" in str(caught.value)
    assert isinstance(caught.value, SlotUnavailableError)


def test_llamacpp_without_the_file_or_with_a_relative_path(tmp_path: Path) -> None:
    with pytest.raises(SlotUnavailableError, match="no model file"):
        llm.open(f"llamacpp://{tmp_path}/missing.gguf").open()
    with pytest.raises(SlotURLError, match="absolute path"):
        llm.open("llamacpp://models/x.gguf")
    with pytest.raises(SlotURLError, match="unknown option"):
        llm.open(f"llamacpp://{tmp_path}/x.gguf?n_ctxx=5")


def test_llamacpp_without_the_engine_names_the_extra(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(SlotUnavailableError) as caught:
        llm.open(_llamacpp_url(tiny_model)).open()
    assert "janus-stack[llm]" in (caught.value.hint or "")


def test_llamacpp_max_tokens_is_bounded_by_the_context(tiny_model: Path) -> None:
    with llm.open(f"llamacpp://{tiny_model}?n_ctx=64") as model:
        with pytest.raises(InvalidInputError, match=r"1\.\.64"):
            model.complete(USER, max_tokens=65)
        with pytest.raises(InvalidInputError, match="context"):
            model.complete([{"role": "user", "content": "word " * 200}], max_tokens=8)


def test_tiny_gguf_is_small_deterministic_and_tokenizes_anything(tmp_path: Path) -> None:
    _require_engine()
    llama_cpp = importlib.import_module("llama_cpp")
    first = write_tiny_gguf(tmp_path / "a.gguf", seed=7)
    second = write_tiny_gguf(tmp_path / "b.gguf", seed=7)
    assert first.read_bytes() == second.read_bytes()
    assert first.stat().st_size < 1_000_000
    engine = llama_cpp.Llama(model_path=str(first), n_ctx=256, verbose=False)
    text = 'naïve café — 東京 🚀 {"ok": true}\n\ttabs'
    tokens = engine.tokenize(text.encode(), add_bos=False)
    assert engine.detokenize(tokens).decode() in (text, " " + text)
    assert engine.metadata["tokenizer.chat_template"]


# -- protocol edge cases, replayed from the real server's bytes ---------------------------


def _content(event: bytes) -> str:
    body = event_json(event)
    if not body or not body.get("choices"):
        return ""
    return body["choices"][0].get("delta", {}).get("content") or ""


def _chunk(content: str | None = None, **delta: Any) -> bytes:
    if content is not None:
        delta["content"] = content
    return data_event(
        {
            "id": "x",
            "object": "chat.completion.chunk",
            "model": "replayed",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
    )


def test_recorded_stream_has_the_expected_shape(recorded: list[bytes]) -> None:
    assert recorded[-1].strip() == b"data: [DONE]"
    assert any(_content(e) for e in recorded)
    final = event_json(recorded[-2])
    assert final is not None and final["choices"][0]["finish_reason"] == "length"


def test_empty_role_only_and_keepalive_chunks_are_skipped(
    replay: ReplayServer, recorded: list[bytes]
) -> None:
    mutated: list[bytes | float] = [b": keep-alive\n\n", _chunk(role="assistant")]
    for event in recorded:
        mutated.append(event.replace(b"\n", b"\r\n"))
        if _content(event):
            mutated += [_chunk(""), _chunk(None), _chunk(role="assistant")]
    replay.queue.append(Script(parts=mutated))
    with llm.open(replay.url()) as model:
        deltas, completion = _collect(model.stream(USER, max_tokens=12))
    assert all(deltas)
    assert completion.text == "".join(_content(e) for e in recorded)
    assert completion.tokens_estimated  # llama.cpp sent no usage
    assert completion.finish_reason == "length"


def test_usage_in_the_last_chunk_is_used(replay: ReplayServer, recorded: list[bytes]) -> None:
    usage = data_event(
        {"choices": [], "usage": {"prompt_tokens": 31, "completion_tokens": 12}, "model": "m2"}
    )
    replay.queue.append(Script(parts=[*recorded[:-1], usage, recorded[-1]]))
    with llm.open(replay.url()) as model:
        completion = model.complete(USER, max_tokens=12)
    assert (completion.prompt_tokens, completion.completion_tokens) == (31, 12)
    assert not completion.tokens_estimated
    assert completion.model == "m2"
    assert replay.chat_requests[0]["stream_options"] == {"include_usage": True}


def _first_content(recorded: list[bytes], n: int) -> tuple[list[bytes], str]:
    kept: list[bytes] = []
    text = ""
    for event in recorded:
        kept.append(event)
        text += _content(event)
        if sum(1 for e in kept if _content(e)) == n:
            break
    return kept, text


def test_a_cut_stream_is_interrupted_not_retried(
    replay: ReplayServer, recorded: list[bytes]
) -> None:
    kept, text = _first_content(recorded, 3)
    replay.queue.append(Script(parts=list(kept), cut=True))
    with (
        llm.open(replay.url(api_key="env:LLM_TEST_KEY")) as model,
        pytest.raises(StreamInterruptedError) as caught,
    ):
        model.complete(USER, max_tokens=12)
    assert caught.value.partial == text
    assert len(replay.chat_requests) == 1
    assert "env:LLM_TEST_KEY" in str(caught.value)
    assert "sk-secret" not in str(caught.value)


def test_a_stalled_stream_is_a_timeout_with_the_partial(
    replay: ReplayServer, recorded: list[bytes]
) -> None:
    kept, text = _first_content(recorded, 2)
    replay.queue.append(Script(parts=[*kept, 1.5, *recorded[len(kept) :]]))
    with llm.open(replay.url(timeout="0.3")) as model, pytest.raises(LLMTimeoutError) as caught:
        model.complete(USER, max_tokens=12)
    assert caught.value.partial == text
    assert "mid-stream" in str(caught.value)
    assert len(replay.chat_requests) == 1


def test_failures_before_the_first_token_are_retried(
    replay: ReplayServer, recorded: list[bytes]
) -> None:
    replay.queue += [
        Script(status=503, content_type="application/json", parts=[b'{"error": "busy"}']),
        Script(status=429, headers={"Retry-After": "0"}, parts=[b"slow down"]),
        Script(parts=[recorded[0], 1.0, *recorded[1:]]),  # role chunk, then a stall
        Script(parts=list(recorded)),
    ]
    with llm.open(replay.url(timeout="0.4", retries="3")) as model:
        completion = model.complete(USER, max_tokens=12)
    assert completion.text == "".join(_content(e) for e in recorded)
    assert len(replay.chat_requests) == 4


def test_persistent_server_errors_are_unavailable(replay: ReplayServer) -> None:
    replay.default = Script(status=500, content_type="application/json", parts=[b'{"error": "x"}'])
    with (
        llm.open(replay.url(api_key="env:LLM_TEST_KEY")) as model,
        pytest.raises(LLMUnavailableError, match="failed with 500 after 3 attempt") as caught,
    ):
        model.complete(USER, max_tokens=4)
    assert "sk-secret" not in str(caught.value)


def test_client_errors_fail_at_once(replay: ReplayServer) -> None:
    replay.queue.append(
        Script(status=400, content_type="application/json", parts=[b'{"error": "too long"}'])
    )
    with llm.open(replay.url()) as model, pytest.raises(InvalidInputError, match="too long"):
        model.complete(USER, max_tokens=4)
    assert len(replay.chat_requests) == 1


def test_wrong_key_fails_at_open(replay: ReplayServer) -> None:
    replay.models = lambda: Script(status=401, content_type="application/json", parts=[b"{}"])
    with pytest.raises(ConfigError, match="refused the API key"):
        llm.open(replay.url(api_key="env:LLM_TEST_KEY")).open()


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (data_event('{"choices": [{"delta": {"content": "x"'), LLMProtocolError),
        (data_event('["not", "a", "chunk"]'), LLMProtocolError),
        (data_event('{"choices": [{"delta": {"content": 5}}]}'), LLMProtocolError),
        (data_event({"error": {"message": "engine exploded"}}), StreamInterruptedError),
    ],
)
def test_malformed_or_error_chunks_are_clear_errors(
    replay: ReplayServer, recorded: list[bytes], bad: bytes, error: type[Exception]
) -> None:
    kept, text = _first_content(recorded, 2)
    replay.queue.append(Script(parts=[*kept, bad, *recorded[len(kept) :]]))
    with llm.open(replay.url()) as model, pytest.raises(error) as caught:
        model.complete(USER, max_tokens=12)
    assert isinstance(caught.value, LLMUnavailableError)
    assert caught.value.partial == text
    assert replay.base.removeprefix("http://") in str(caught.value)


def test_stream_end_without_done(replay: ReplayServer, recorded: list[bytes]) -> None:
    replay.queue.append(Script(parts=list(recorded[:-1])))  # finish_reason, no [DONE]
    kept, _ = _first_content(recorded, 2)
    replay.queue.append(Script(parts=list(kept)))  # neither: the answer is unfinished
    with llm.open(replay.url()) as model:
        assert model.complete(USER, max_tokens=12).finish_reason == "length"
        with pytest.raises(StreamInterruptedError, match="ended before"):
            model.complete(USER, max_tokens=12)


def test_a_whole_json_completion_is_accepted(replay: ReplayServer) -> None:
    body = {
        "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        "model": "whole",
    }
    replay.queue.append(Script(content_type="application/json", parts=[json.dumps(body).encode()]))
    with llm.open(replay.url()) as model:
        completion = model.complete(USER, max_tokens=4)
    assert (completion.text, completion.completion_tokens, completion.model) == ("hi", 1, "whole")


def _answer(text: str) -> Script:
    return Script(parts=[_chunk(role="assistant"), _chunk(text), data_event("[DONE]")])


def test_invalid_json_is_retried_then_refused(replay: ReplayServer) -> None:
    replay.queue += [_answer("not json"), _answer('{"tool": "search", "ok": true}')]
    with llm.open(replay.url()) as model:
        completion = model.complete(USER, max_tokens=16, json_schema=SCHEMA)
        assert completion.data == {"tool": "search", "ok": True}
        assert completion.attempts == 2
        assert replay.chat_requests[1]["temperature"] >= 0.5
        replay.queue += [_answer('{"tool": "dance", "ok": true}')] * 3
        with pytest.raises(ModelOutputError, match="tool") as caught:
            model.complete(USER, max_tokens=16, json_schema=SCHEMA)
    assert caught.value.text == '{"tool": "dance", "ok": true}'
    assert "after 3 attempt" in str(caught.value)


def test_unsupported_request_options_are_dropped_once(replay: ReplayServer) -> None:
    replay.queue += [
        Script(
            status=422, content_type="application/json", parts=[b'{"detail": "stream_options"}']
        ),
        Script(
            status=400, content_type="application/json", parts=[b'{"error": "response_format"}']
        ),
        _answer('{"tool": "answer", "ok": false}'),
        _answer('{"tool": "answer", "ok": false}'),
    ]
    with llm.open(replay.url()) as model:
        assert model.complete(USER, max_tokens=16, json_schema=SCHEMA).data["ok"] is False
        model.complete(USER, max_tokens=16, json_schema=SCHEMA)
    first, second, third, fourth = replay.chat_requests
    assert "stream_options" in first and "stream_options" not in second
    assert second["response_format"]["type"] == "json_schema"
    assert third["response_format"] == {"type": "json_object", "schema": SCHEMA}
    assert fourth["response_format"]["type"] == "json_object"  # remembered


def test_unreachable_server_fails_at_open_with_the_redacted_url() -> None:
    url = f"openai+http://127.0.0.1:{free_port()}/v1?model=x&api_key=env:LLM_TEST_KEY"
    with pytest.raises(LLMUnavailableError, match="cannot reach") as caught:
        llm.open(url).open()
    assert "env:LLM_TEST_KEY" in str(caught.value)
    assert "sk-secret" not in str(caught.value)


def test_openai_url_options_are_checked() -> None:
    with pytest.raises(SlotURLError, match="unknown option"):
        llm.open("openai+http://h:1/v1?model=x&temprature=1")
    with pytest.raises(SlotURLError, match="json"):
        llm.open("openai+http://h:1/v1?json=yaml")
    with pytest.raises(SlotURLError, match="tool_results"):
        llm.open("openai+http://h:1/v1?tool_results=xml")
    with pytest.raises(SlotURLError, match="api_key"):
        llm.open("openai+http://user:pw@h:1/v1")


# -- the chain and the default ----------------------------------------------------------------


def test_chain_records_who_answered_and_why_others_did_not(
    llama_server: LlamaServer, tiny_model: Path
) -> None:
    dead = _dead_url()
    with llm.open(chain_url(dead, "none://", _llamacpp_url(tiny_model))) as chain:
        completion = chain.complete(USER, max_tokens=4)
    assert completion.provider == _llamacpp_url(tiny_model)
    assert len(completion.fallbacks) == 2
    assert completion.fallbacks[0].startswith(dead.split("?")[0])
    assert "no model configured" in completion.fallbacks[1]


def test_chain_falls_back_on_server_errors_but_not_on_bad_input(
    replay: ReplayServer, llama_server: LlamaServer
) -> None:
    replay.default = Script(status=503, content_type="application/json", parts=[b'{"error": "x"}'])
    with llm.open(chain_url(replay.url(retries="0"), llama_server.url)) as chain:
        assert chain.complete(USER, max_tokens=4).provider == llama_server.url
        replay.default = Script(status=400, content_type="application/json", parts=[b"{}"])
        with pytest.raises(InvalidInputError):
            chain.complete(USER, max_tokens=4)


def test_chain_does_not_fall_back_after_the_first_token(
    replay: ReplayServer, recorded: list[bytes], llama_server: LlamaServer
) -> None:
    kept, text = _first_content(recorded, 2)
    replay.queue.append(Script(parts=list(kept), cut=True))
    with (
        llm.open(chain_url(replay.url(), llama_server.url)) as chain,
        pytest.raises(StreamInterruptedError) as caught,
    ):
        chain.complete(USER, max_tokens=12)
    assert caught.value.partial == text


def test_chain_with_no_working_provider_lists_every_reason() -> None:
    first, second = _dead_url(), _dead_url()
    with pytest.raises(LLMUnavailableError, match="no provider of the chain") as caught:
        llm.open(chain_url(first, second)).open()
    assert first.split("?")[0] in str(caught.value)
    assert second.split("?")[0] in str(caught.value)


def test_chain_urls_are_checked() -> None:
    with pytest.raises(SlotURLError, match="literal secret"):
        llm.open(chain_url("openai+http://h:1/v1?model=m&api_key=sk-literal"))
    with pytest.raises(SlotURLError, match="%26"):
        llm.open("chain://?try=openai+http://h:1/v1?model=m&api_key=env:LLM_TEST_KEY")
    with pytest.raises(SlotURLError, match="lists no provider"):
        llm.open("chain://")
    with pytest.raises(SlotURLError, match="another chain"):
        llm.open(chain_url(chain_url("none://")))
    readable = llm.open("chain://?try=none://&try=openai+http://h:1/v1?model=m%26timeout=3")
    assert [p.backend for p in readable.providers] == ["none", "openai"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", ["none://", "extractive://"])
def test_the_default_is_no_model(url: str) -> None:
    with llm.open(url) as model:
        assert not model.configured
        model.probe()
        with pytest.raises(LLMUnavailableError, match="no model configured") as caught:
            model.complete(USER, max_tokens=4)
        assert "janus models install" in (caught.value.hint or "")
        with pytest.raises(InvalidInputError):
            model.complete([], max_tokens=4)


def test_doctor_reports_the_llm_slot(llama_server: LlamaServer, tmp_path: Path) -> None:
    default = load_settings(environ={"JANUS_HOME": str(tmp_path)}, cwd=tmp_path)
    assert default.slots.llm == "none://"
    with Janus(default) as janus:
        check = check_slot(janus, "llm")
    assert check.ok and check.backend == "none"
    assert check.note == "no model configured (answers are extractive)"
    served = load_settings(
        {"llm_url": llama_server.url}, environ={"JANUS_HOME": str(tmp_path)}, cwd=tmp_path
    )
    with Janus(served) as janus:
        check = check_slot(janus, "llm")
        assert janus.llm.configured
    assert check.ok and check.backend == "openai" and check.note == "model tiny"
    broken = load_settings(
        {"llm_url": _dead_url()}, environ={"JANUS_HOME": str(tmp_path)}, cwd=tmp_path
    )
    with Janus(broken) as janus:
        check = check_slot(janus, "llm")
    assert not check.ok and check.hint and "cannot reach" in (check.error or "")
