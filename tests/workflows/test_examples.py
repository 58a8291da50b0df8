"""The examples finish with no model configured, on the embedded defaults, via ``janus run``;
and an agent with a real (random-weight) local model emits well-formed tool calls."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
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

from janus_stack.cli import app
from janus_stack.slots.llm.tiny_gguf import write_tiny_gguf
from janus_stack.workflows.runs import Runs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_examples_run_to_the_end_with_citations(home: Path) -> None:
    cli = CliRunner()
    docs = sorted(str(p) for p in (EXAMPLES / "docs").glob("*.md"))
    ingested = cli.invoke(app, ["ingest", "--no-entities", *docs, "--json"])
    assert ingested.exit_code == 0, ingested.output
    agents = ["--agents-dir", str(EXAMPLES / "agents")]

    research = cli.invoke(
        app,
        [
            "run",
            str(EXAMPLES / "workflows" / "research.yaml"),
            *agents,
            "--input",
            "question=Who commanded Apollo 8?",
            "--json",
        ],
    )
    assert research.exit_code == 0, research.output
    result = json.loads(research.stdout)
    assert result["status"] == "done"
    assert [s["key"] for s in result["steps"]] == ["research", "found", "summarise"]
    assert "Borman" in result["output"]["summary"]
    assert "[1]" in result["output"]["summary"]
    assert {Path(c["source"]).name for c in result["output"]["citations"]} == {"apollo8.md"}

    revise = cli.invoke(
        app,
        [
            "run",
            str(EXAMPLES / "workflows" / "draft_critique_revise.yaml"),
            *agents,
            "--input",
            "topic=Apollo 8",
            "--json",
        ],
    )
    assert revise.exit_code == 0, revise.output
    loop = json.loads(revise.stdout)
    assert loop["status"] == "done"
    assert loop["output"]["rounds"] == 3  # no model says APPROVED: the bound ends it
    assert loop["output"]["citations"] and "Apollo 8" in loop["output"]["text"]
    assert sum(1 for s in loop["steps"] if s["agent"] == "critic") == 3

    usage = cli.invoke(app, ["runs", "usage", "--by", "workflow", "--json"])
    assert {row["workflow"] for row in json.loads(usage.stdout)} == {
        "research",
        "draft-critique-revise",
    }


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs llama-cpp")
def test_a_random_weight_model_makes_well_formed_tool_calls(
    home: Path, runs: Runs, workflow: object, calls: Calls
) -> None:
    model = write_tiny_gguf(home / "tiny.gguf")
    write(
        home / "agents" / "babbler.yaml",
        f"""
        name: babbler
        instructions: Call test.effect, then answer.
        model: {{provider: "llamacpp://{model}?n_ctx=1024", max_output_tokens: 200}}
        tools: [test.effect]
        budget: {{max_steps: 3}}
    """,
    )
    spec = workflow("""  # type: ignore[operator]
        name: babble
        steps: [{id: talk, kind: agent, agent: babbler, input: "Say something."}]
    """)
    run = runs.store.run(execute(runs, spec))
    # Gibberish, but well-formed: every turn parsed, and the last turn allowed could
    # only answer, so the agent answered; no turn failed on malformed JSON.
    assert run.status == "done", run.error
    step = runs.store.steps(run.id)["talk"]
    assert step.completion_tokens > 0 and step.prompt_tokens > 0 and step.cost == 0.0
    assert all(isinstance(c["label"], str) for c in calls.seen)
    journal = runs.store.calls(run.id)
    assert all(c["tool"] == "test.effect" and c["status"] == "done" for c in journal)
    failed_turns = [
        e
        for e in runs.janus.events.query(subject=f"run:{run.id}")
        if e.type == "workflow.step.failed"
    ]
    assert failed_turns == []
    assert "".join(text for _i, _k, text in runs.store.tokens(run.id)).startswith("{")
