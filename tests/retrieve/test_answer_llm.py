"""``janus ask`` with a language model: a real llama.cpp engine on the tiny random GGUF.

The answers are gibberish; what is tested is the plumbing: the context and
prompt, streamed tokens, usage numbers, the citation check, and the fall
back to the extractive answer when the model is down.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from retrieve_corpus import (  # noqa: F401 - fixtures
    Memory,
    extractor_fixture,
    memory_fixture,
    module_pg_url_fixture,
)

from conftest import free_port
from janus_stack.retrieve.answer import Answerer
from janus_stack.retrieve.generation import Source, check_citations, messages_for, pack_context
from janus_stack.slots import llm
from janus_stack.slots.llm.chain import chain_url

QUESTION = "In which city does Pierre Durand run his bakery?"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("llama_cpp", reason="the llm extra (llama-cpp-python) is not installed")
    from janus_stack.slots.llm.tiny_gguf import write_tiny_gguf  # noqa: PLC0415

    return write_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


@pytest.fixture(scope="module")
def tiny_model(tiny_gguf: Path) -> Iterator[llm.LanguageModel]:
    with llm.open(f"llamacpp://{tiny_gguf}?n_ctx=4096&threads=1&seed=0") as model:
        yield model


def dead_server() -> str:
    return f"openai+http://127.0.0.1:{free_port()}/v1?model=x&retries=0&connect_timeout=1"


def test_the_model_answers_from_the_context_with_usage_recorded(
    memory: Memory, tiny_model: llm.LanguageModel
) -> None:
    answerer = Answerer(memory.janus, retriever=memory.retriever, model=tiny_model)
    events = list(answerer.stream(QUESTION))

    kinds = [event.kind for event in events]
    assert kinds[0] == "retrieval"
    assert kinds[-1] == "answer"
    answer = events[-1].data
    assert answer.answerer == "llm"
    streamed = "".join(e.data for e in events if e.kind == "token")
    assert streamed.strip() == answer.text
    assert answer.usage["prompt_tokens"] > 50
    assert answer.usage["latency_s"] > 0
    assert answer.model
    check = check_citations(answer.text, pack_context(answer.hits, memory.janus.embedder))
    assert [c.label for c in answer.citations] == check.cited
    assert answer.found == bool(check.cited)
    assert answer.flags == check.flags()


def test_a_server_killed_before_the_question_falls_back_to_extractive(
    memory: Memory, tiny_gguf: Path, tmp_path: Path
) -> None:
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "llama_cpp.server", "--model", str(tiny_gguf)),
            *("--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "1"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        with llm.open(f"openai+{base}?model=tiny&retries=0&timeout=10") as model:
            server.kill()
            server.wait(10)
            answerer = Answerer(memory.janus, retriever=memory.retriever, model=model)
            answer = answerer.ask(QUESTION)
    finally:
        server.kill()
        server.wait(10)
        log.close()

    assert answer.answerer == "extractive"
    assert "Lyon" in answer.text
    assert any("answered extractively" in flag for flag in answer.flags)


def test_a_chain_skips_the_dead_server_and_uses_the_engine(
    memory: Memory, tiny_model: llm.LanguageModel
) -> None:
    with llm.open(chain_url(dead_server(), tiny_model.url.raw)) as model:
        answer = Answerer(memory.janus, retriever=memory.retriever, model=model).ask(QUESTION)

    assert answer.answerer == "llm"
    assert answer.usage["fallbacks"]


def test_the_context_is_numbered_within_the_budget(memory: Memory) -> None:
    hits = memory.retriever.search(QUESTION, k=5)
    sources = pack_context(hits, memory.janus.embedder, budget=60)

    assert [s.label for s in sources] == list(range(1, len(sources) + 1))
    assert 1 <= len(sources) < len(hits)
    prompt = messages_for(QUESTION, sources)[1]["content"]
    assert prompt.startswith("Sources:")
    assert "[1] " in prompt
    assert QUESTION in prompt


def test_citations_are_checked_against_the_context() -> None:
    sources = [Source(1, None, ""), Source(2, None, "")]  # type: ignore[arg-type]
    text = (
        "The bakery is in Lyon. [1] It uses a cold fermentation [2]. "
        "This sentence cites nothing at all. The glaze is zorbulite [7]."
    )

    check = check_citations(text, sources)

    assert check.cited == [1, 2]
    assert check.unknown == [7]
    assert check.uncited_sentences == ["This sentence cites nothing at all."]
    assert len(check.flags()) == 2
