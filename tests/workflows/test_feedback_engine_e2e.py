"""Feedback and agent accounting end to end, on llama.cpp with the tiny random GGUF in process.

A note given to a paused run must reach the prompt of its next agent step,
and every token the model spends — in the step's agent, in an agent it
calls through ``agents.call``, in a step that then fails — must be in the
step's, the run's and the per-agent totals. The model's own count of what
it did (its ``janus_llm_tokens_total`` counter) is the reference.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engines import in_process, tiny_model_path_fixture  # noqa: F401 - fixtures
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

from janus_stack.agents import AgentRegistry, FunctionTool, Toolbox
from janus_stack.agents.budget import Price, PriceTable
from janus_stack.context import Janus
from janus_stack.workflows.agent_steps import FEEDBACK_HEADING
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec

TINY = "janus-tiny-random"  # the model name the in-process engine reports
PRICE = 0.001  # dollars a token, prompt or completion
Make = Callable[[str], WorkflowSpec]


class Flaky:
    """A tool whose backend is down (not a Janus error: the step fails) until it is fixed."""

    def __init__(self) -> None:
        self.down = True

    def tool(self) -> FunctionTool:
        def flaky(label: str) -> dict[str, Any]:
            """Do something that needs a backend."""
            if self.down:
                raise RuntimeError("the tool's backend is down")
            return {"label": label}

        return FunctionTool.wrap("test.flaky", flaky)


@pytest.fixture(name="flaky")
def flaky_fixture(toolbox: Toolbox) -> Flaky:
    flaky = Flaky()
    toolbox.add(flaky.tool())
    return flaky


@pytest.fixture(name="runs")
def priced_runs_fixture(
    janus: Janus, registry: AgentRegistry, toolbox: Toolbox, flaky: Flaky
) -> Iterator[Runs]:
    """Runs whose price table charges the tiny model although it runs locally."""
    prices = PriceTable({TINY: Price(PRICE * 1e6, PRICE * 1e6, local=True)})
    service = Runs(janus, registry, toolbox, prices=prices)
    service.register(janus.handlers)
    yield service
    service.engine.close()


@pytest.fixture(name="url")
def url_fixture(tiny_model_path: Path) -> str:
    return in_process(tiny_model_path)


def agent(home: Path, name: str, model: Any, **fields: Any) -> None:
    manifest = {"name": name, "instructions": f"You are {name}.", "model": model, **fields}
    write(home / "agents" / f"{name}.yaml", json.dumps(manifest))


def model_tokens(runs: Runs, url: str) -> tuple[int, int]:
    """Prompt and completion tokens the model reports it processed so far."""
    model = runs.engine.model(url)
    assert model is not None
    totals = {"prompt": 0, "completion": 0}
    for family in model.telemetry.registry.collect():
        for sample in family.samples:
            if sample.name == "janus_llm_tokens_total":
                totals[sample.labels["kind"]] += int(sample.value)
    return totals["prompt"], totals["completion"]


def one_step(workflow: Make, name: str, agent_name: str, text: str) -> WorkflowSpec:
    return workflow(f"""
        name: {name}
        steps: [{{id: ask, kind: agent, agent: {agent_name}, input: "{text}"}}]
    """)


def test_feedback_on_a_paused_run_reaches_the_next_agent_prompt(
    home: Path, runs: Runs, workflow: Make, url: str
) -> None:
    agent(home, "thinker", url, budget={"max_steps": 1})
    spec = workflow("""
        name: think
        inputs: {question: {}}
        steps: [{id: ask, kind: agent, agent: thinker, input: "{{ inputs.question }}"}]
    """)
    question, note = "Summarise the ledger.", "Cite every source you use."
    run_id = runs.create(spec, {"question": question}, tenant="default")
    runs.pause(run_id)
    runs.feedback(run_id, note)
    runs.resume(run_id)
    assert runs.engine.execute(run_id) == "done"

    step = runs.store.steps(run_id)["ask"]
    (given,) = runs.store.feedback(run_id)
    assert given["consumed_by"] == "ask"
    assert step.inputs["feedback"] == [{"id": given["id"], "text": note}]
    (event,) = runs.janus.events.query(subject=f"run:{run_id}", type="workflow.feedback.injected")
    assert event.payload["step"] == "ask" and event.payload["new"] == [given["id"]]
    # The model was shown the note: a run whose input is the question with the labelled
    # note written out makes the model process exactly as many prompt tokens.
    written = f"{question}\n\n{FEEDBACK_HEADING}\n- {note}"
    literal = runs.store.run(execute(runs, spec, {"question": written}))
    bare = runs.store.run(execute(runs, spec, {"question": question}))
    assert literal.status == bare.status == "done"
    assert step.prompt_tokens == literal.prompt_tokens > bare.prompt_tokens
    assert runs.store.steps(literal.id)["ask"].inputs.get("feedback") is None


def test_called_agents_and_failed_steps_count_every_model_token(
    home: Path, runs: Runs, workflow: Make, url: str, flaky: Flaky
) -> None:
    delegating = {"provider": url, "tool_choice": "required"}
    agent(
        home, "boss", delegating, tools=["agents.call"], calls=["helper"], budget={"max_steps": 2}
    )
    agent(home, "helper", url, budget={"max_steps": 1})

    run = runs.store.run(execute(runs, one_step(workflow, "delegate", "boss", "Find out.")))
    assert run.status == "done", run.error
    prompt, completion = model_tokens(runs, url)
    assert prompt > 0 and completion > 0
    step = runs.store.steps(run.id)["ask"]
    assert (step.prompt_tokens, step.completion_tokens) == (prompt, completion)
    assert (run.prompt_tokens, run.completion_tokens) == (prompt, completion)
    assert run.cost == pytest.approx((prompt + completion) * PRICE)
    (called,) = runs.store.detail(run)["agent_calls"]
    assert called["agent"] == "helper" and called["prompt_tokens"] > 0
    per_agent = {row["agent"]: row for row in runs.store.usage("agent")}
    assert set(per_agent) == {"boss", "helper"}
    assert per_agent["helper"]["calls"] == 1 and per_agent["helper"]["steps"] == 0
    assert per_agent["helper"]["prompt_tokens"] == called["prompt_tokens"]
    for kind, total in (("prompt_tokens", prompt), ("completion_tokens", completion)):
        assert per_agent["boss"][kind] + per_agent["helper"][kind] == total
    assert per_agent["boss"]["cost"] + per_agent["helper"]["cost"] == pytest.approx(run.cost)
    assert runs.store.detail(run)["agents"] == list(per_agent.values())  # the only run so far

    # A step whose tool fails keeps what its model calls cost; a resume adds the retry.
    agent(home, "clumsy", delegating, tools=["test.flaky"], budget={"max_steps": 2})
    failed = runs.store.run(execute(runs, one_step(workflow, "clumsy", "clumsy", "Do it.")))
    assert failed.status == "failed" and "backend is down" in (failed.error or "")
    spent = model_tokens(runs, url)
    first = (spent[0] - prompt, spent[1] - completion)
    assert first[0] > 0
    assert (failed.prompt_tokens, failed.completion_tokens) == first
    flaky.down = False
    runs.resume(failed.id)
    assert runs.engine.execute(failed.id) == "done"
    again = runs.store.run(failed.id)
    total = model_tokens(runs, url)
    both = (total[0] - prompt, total[1] - completion)
    assert both[0] > first[0]
    assert (again.prompt_tokens, again.completion_tokens) == both
    retried = runs.store.steps(failed.id)["ask"]
    assert retried.attempts == 2
    assert (retried.prompt_tokens, retried.completion_tokens) == both
