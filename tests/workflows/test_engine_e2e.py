"""The acceptance points end to end with a real engine: llama.cpp on the tiny random GGUF.

The model's words are gibberish; its turns are not. Every turn is decoded
under the JSON schema of the agent's actions (llama.cpp turns it into a
grammar), so the tests can rely on the *shape* of what it does: with
``tool_choice: required`` an agent calls one of its tools first, and its
last turn can only answer. The engine runs in process (``llamacpp://``)
and behind llama.cpp's OpenAI-compatible server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engines import (  # noqa: F401 - fixtures
    in_process,
    llama_server_fixture,
    tiny_model_path_fixture,
)
from typer.testing import CliRunner
from workbench import (  # noqa: F401 - fixtures
    calls_fixture,
    execute,
    home_fixture,
    janus_fixture,
    registry_fixture,
    toolbox_fixture,
    workflow_fixture,
    write,
)

from conformance._llm_servers import LlamaServer
from janus_stack.agents import AgentRegistry, Toolbox
from janus_stack.agents.budget import Price, PriceTable
from janus_stack.cli import app
from janus_stack.context import Janus
from janus_stack.slots.llm.chain import chain_url
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TINY = "janus-tiny-random"  # the model name the in-process engine reports
Make = Callable[[str], WorkflowSpec]


@pytest.fixture(params=["llamacpp", "server"], name="engine_url")
def engine_url_fixture(request: pytest.FixtureRequest, tiny_model_path: Path) -> str:
    if request.param == "llamacpp":
        return in_process(tiny_model_path)
    server: LlamaServer = request.getfixturevalue("llama_server")
    return server.url


@pytest.fixture(name="runs")
def priced_runs_fixture(janus: Janus, registry: AgentRegistry, toolbox: Toolbox) -> Iterator[Runs]:
    """Runs whose price table charges the tiny model although it runs locally."""
    prices = PriceTable({TINY: Price(1000.0, 1000.0, local=True)})  # $0.001 a token
    service = Runs(janus, registry, toolbox, prices=prices)
    yield service
    service.engine.close()


def agent(home: Path, name: str, model: str, **fields: Any) -> None:
    manifest = {"name": name, "instructions": f"You are {name}.", "model": model, **fields}
    write(home / "agents" / f"{name}.yaml", json.dumps(manifest))


def cli_json(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_examples_finish_with_the_real_engine(
    home: Path, engine_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JANUS_LLM_URL", engine_url)  # the agents' model: default
    docs = sorted(str(p) for p in (EXAMPLES / "docs").glob("*.md"))
    cli_json("ingest", "--no-entities", *docs)
    agents = ["--agents-dir", str(EXAMPLES / "agents")]  # as shipped

    research = cli_json(
        "run",
        str(EXAMPLES / "workflows" / "research.yaml"),
        *agents,
        "--input",
        "question=Who commanded Apollo 8?",
    )
    assert research["status"] == "done", research["error"]
    first = research["steps"][0]
    assert first["key"] == "research" and first["output"]["mode"] == "llm"
    # tool_choice: required forces a first call; a random model may call again before its last turn.
    assert first["output"]["tool_calls"] >= 1
    assert first["prompt_tokens"] > 0 and first["completion_tokens"] > 0
    assert [s["key"] for s in research["steps"]][1] == "found"
    assert set(research["output"]) == {"question", "summary", "citations"}
    shown = cli_json("runs", "show", research["id"])
    assert shown["tool_calls"][0]["tool"] in ("memory.ask", "memory.search")
    assert shown["tokens"].startswith("{")  # the streamed, schema-shaped turns

    revise = cli_json(
        "run",
        str(EXAMPLES / "workflows" / "draft_critique_revise.yaml"),
        *agents,
        "--input",
        "topic=Apollo 8",
    )
    assert revise["status"] == "done", revise["error"]
    rounds = int(revise["output"]["rounds"])
    assert 1 <= rounds <= 3
    by_agent = [s["agent"] for s in revise["steps"]]
    assert by_agent == ["writer", *["critic", "editor"] * rounds]
    assert all(s["output"]["mode"] == "llm" for s in revise["steps"])


def test_budgets_stop_a_step_or_a_run_with_budget_exceeded(
    home: Path, runs: Runs, workflow: Make, tiny_model_path: Path
) -> None:
    model = in_process(tiny_model_path)
    agent(home, "plain", model, budget={"max_steps": 2})
    agent(home, "tight", model, budget={"max_tokens": 50})
    agent(home, "pricey", model, budget={"max_cost": 0.01})

    def two_steps(name: str, budget: str = "{}") -> str:
        spec = workflow(f"""
            name: spend-{name}
            budget: {budget}
            steps:
              - {{id: first, kind: agent, agent: {name}, input: "Say something."}}
              - {{id: second, kind: agent, agent: {name}, input: "Say more."}}
        """)
        return execute(runs, spec)

    # What the two steps spend without a run budget (the engine is deterministic) puts
    # a run budget between the first step's spending and both steps'.
    free = runs.store.steps(two_steps("plain"))
    first = free["first"].prompt_tokens + free["first"].completion_tokens
    both = first + free["second"].prompt_tokens + free["second"].completion_tokens
    tokens = (first + both) // 2
    cost = round(tokens * 0.001, 6)

    cases = {
        "agent tokens": (two_steps("tight"), "agent tight (step first)", "max_tokens=50"),
        "agent cost": (two_steps("pricey"), "agent pricey (step first)", "max_cost=0.01"),
        "run tokens": (
            two_steps("plain", f"{{max_tokens: {tokens}}}"),
            "(spend-plain)",
            f"max_tokens={tokens}",
        ),
        "run cost": (
            two_steps("plain", f"{{max_cost: {cost}}}"),
            "(spend-plain)",
            f"max_cost={cost}",
        ),
    }
    for case, (run_id, where, limit) in cases.items():
        run = runs.store.run(run_id)
        assert run.status == "budget_exceeded", (case, run.error)
        assert run.error is not None, case
        assert f"{where}: budget exceeded" in run.error and limit in run.error, (case, run.error)
        steps = runs.store.steps(run_id)
        stopped = steps["second" if case.startswith("run") else "first"]
        assert stopped.status == "budget_exceeded" and stopped.error == run.error, case
        assert stopped.prompt_tokens > 0, case  # what the stopped step spent is accounted
        assert ("second" in steps) == case.startswith("run"), case
        if case.startswith("run"):
            assert steps["first"].status == "done", case
        events = runs.janus.events.query(
            subject=f"run:{run_id}", type="workflow.run.budget_exceeded"
        )
        assert len(events) == 1 and events[0].payload["error"] == run.error, case


def test_a_chain_falls_back_when_the_first_provider_is_down(
    home: Path, runs: Runs, workflow: Make, tiny_model_path: Path, tmp_path: Path
) -> None:
    with LlamaServer(tiny_model_path, tmp_path) as server:
        first = server.url
        server.kill()  # down, as a crash leaves it
    agent(home, "steady", chain_url(first, in_process(tiny_model_path)), budget={"max_steps": 2})
    spec = workflow("""
        name: steady
        steps: [{id: talk, kind: agent, agent: steady, input: "Say something."}]
    """)
    run = runs.store.run(execute(runs, spec))
    assert run.status == "done", run.error
    output = runs.store.steps(run.id)["talk"].output
    assert output is not None and output["mode"] == "llm"
    assert output["provider"].startswith("llamacpp://")
    assert output["fallbacks"] and f":{server.port}" in output["fallbacks"][0]
    assert run.prompt_tokens > 0


def test_a_model_call_outside_the_scopes_is_refused_and_logged(
    home: Path, runs: Runs, workflow: Make, tiny_model_path: Path
) -> None:
    agent(
        home,
        "nosy",
        {"provider": in_process(tiny_model_path), "tool_choice": "required"},
        tools=["memory.search"],
        memory={"read": {"tenants": ["other"]}},
        budget={"max_steps": 2},
    )
    spec = workflow("""
        name: nosy
        steps: [{id: look, kind: agent, agent: nosy, input: "What is there?"}]
    """)
    run = runs.store.run(execute(runs, spec))
    assert run.status == "done", run.error  # the refusal went back to the model, which answered
    output = runs.store.steps(run.id)["look"].output
    assert output is not None and output["tool_calls"] == 1
    refused = runs.janus.events.query(subject=f"run:{run.id}", type="agent.tool.refused")
    assert len(refused) == 1 and refused[0].actor == "agent:nosy"
    assert refused[0].payload["tool"] == "memory.search"
    assert "may not read tenant" in refused[0].payload["reason"]
    assert runs.store.calls(run.id) == []  # refused before the journal: nothing ran


def test_an_agent_calls_another_within_its_budget(
    home: Path, runs: Runs, workflow: Make, tiny_model_path: Path
) -> None:
    model = {"provider": in_process(tiny_model_path), "tool_choice": "required"}
    agent(home, "boss", model, tools=["agents.call"], calls=["helper"], budget={"max_steps": 2})
    agent(home, "helper", in_process(tiny_model_path), budget={"max_steps": 1})
    agent(home, "stingy", model, tools=["agents.call"], calls=["meagre"], budget={"max_steps": 2})
    agent(home, "meagre", in_process(tiny_model_path), budget={"max_tokens": 30})

    def delegate(boss: str) -> str:
        return execute(
            runs,
            workflow(f"""
                name: delegate-{boss}
                steps: [{{id: ask, kind: agent, agent: {boss}, input: "Find out."}}]
            """),
        )

    run = runs.store.run(delegate("boss"))
    assert run.status == "done", run.error
    (call,) = runs.store.calls(run.id)
    assert (call["tool"], call["agent"], call["status"]) == ("agents.call", "boss", "done")
    assert runs.store.called_agents(run.id) == {"helper"}
    step = runs.store.steps(run.id)["ask"]
    assert step.output is not None and step.output["tool_calls"] == 1
    streamed = "".join(text for _i, key, text in runs.store.tokens(run.id) if key == "ask")
    assert streamed.count('"action"') == 3  # boss calls, helper answers, boss answers
    collaborated = runs.janus.events.query(
        subject=f"run:{run.id}", type="workflow.collaboration.recorded"
    )
    assert collaborated[0].payload["agents"] == 2

    stopped = runs.store.run(delegate("stingy"))
    assert stopped.status == "budget_exceeded", stopped.error
    assert stopped.error is not None
    assert "agent meagre (step ask): budget exceeded" in stopped.error
    (failed,) = runs.store.calls(stopped.id)
    assert (failed["tool"], failed["status"]) == ("agents.call", "failed")
