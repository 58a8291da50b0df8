"""The built-in tools executed in runs: memory.remember, documents.ingest, objects.read and
the scope of agents.call (its execution with a real engine is in test_engine_e2e.py).

Tool steps name the agent whose scopes apply (``agent:``), so no model is involved.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from workbench import (  # noqa: F401 - fixtures
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

from janus_stack.agents import AgentManifest, SpecError, Toolbox, ToolContext, ToolRefusedError
from janus_stack.agents.registry import load_manifest
from janus_stack.agents.sourcefile import parse_text
from janus_stack.context import Janus
from janus_stack.ops.verify import verify
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec

Make = Callable[[str], WorkflowSpec]
FACT = "Alice Johnson leads the Apollo project at Acme Corporation in London."


@pytest.fixture(name="scribe")
def scribe_fixture(home: Path) -> None:
    write(
        home / "agents" / "scribe.yaml",
        """
        name: scribe
        instructions: keep notes
        model: none
        tools: [memory.remember, memory.search, documents.ingest, objects.read]
        memory: {read: {tenants: [default]}, write: {tenants: [default]}}
    """,
    )


def test_remember_writes_every_store_with_the_agent_as_source_once(
    scribe: None, runs: Runs, workflow: Make, janus: Janus, home: Path
) -> None:
    spec = workflow(f"""
        name: remember
        steps:
          - {{id: note, kind: tool, tool: memory.remember, agent: scribe,
             arguments: {{text: "{FACT}"}}}}
          - {{id: again, kind: tool, tool: memory.remember, agent: scribe,
             arguments: {{text: "{FACT}"}}}}
          - {{id: find, kind: retrieve, agent: scribe, query: "Who leads the Apollo project?"}}
    """)
    run = runs.store.run(execute(runs, spec))
    assert run.status == "done", run.error
    steps = runs.store.steps(run.id)
    note, again, found = (steps[k].output or {} for k in ("note", "again", "find"))
    source = home / "memory" / "default" / "scribe"
    assert Path(note["source"]).parent == source and note["tags"]["agent"] == "scribe"
    assert note["documents"] == 1 and note["chunks"] >= 1
    assert again["source"] == note["source"] and again.get("unchanged") == 1  # one fact, once
    assert found["hits"] >= 1
    assert Path(found["citations"][0]["source"]).parent == source

    report = verify(janus, "default")
    assert report.ok, report.as_dict()
    counts = report.as_dict()["tenants"]["default"]["graph"]["counts"]
    assert counts["entities"]["ledger"] > 0  # the fact's entities, like any ingested text
    assert counts["mentions"]["store"] == counts["mentions"]["ledger"] > 0


def test_ingest_and_object_reads_stay_inside_their_scopes(
    scribe: None, runs: Runs, workflow: Make, janus: Janus, home: Path, tmp_path: Path
) -> None:
    doc = write(home / "docs" / "apollo.md", f"# Apollo\n\n{FACT}\n")
    spec = workflow(f"""
        name: ingest
        steps:
          - {{id: load, kind: tool, tool: documents.ingest, agent: scribe,
             arguments: {{paths: ["{doc}"], entities: false}}}}
          - {{id: reload, kind: tool, tool: documents.ingest, agent: scribe,
             arguments: {{paths: ["{doc}"], entities: false}}}}
    """)
    run = runs.store.run(execute(runs, spec))
    assert run.status == "done", run.error
    steps = runs.store.steps(run.id)
    assert (steps["load"].output or {})["documents"] == 1
    assert (steps["reload"].output or {}).get("unchanged") == 1

    outside = write(tmp_path / "elsewhere" / "secret.md", "# Secret\n")
    refused = runs.store.run(
        execute(
            runs,
            workflow(f"""
                name: outside
                steps: [{{id: load, kind: tool, tool: documents.ingest, agent: scribe,
                          arguments: {{paths: ["{outside}"]}}}}]
            """),
        )
    )
    assert refused.status == "failed"
    assert refused.error is not None and "outside the working directory" in refused.error

    (key,) = {obj.key for obj in janus.objects.list(tenant="default")}
    reader = runs.engine.registry.get("scribe")
    context = ToolContext(janus, "default", reader)
    read = runs.engine.toolbox.invoke(context, "objects.read", {"key": key, "max_bytes": 9})
    assert read == {"key": key, "size": doc.stat().st_size, "truncated": True, "text": "# Apollo\n"}
    with pytest.raises(ToolRefusedError, match="may not read tenant 'acme'"):
        runs.engine.toolbox.invoke(context, "objects.read", {"key": "acme/" + "0" * 64})


def test_agents_call_reaches_only_the_agents_listed_in_calls(
    janus: Janus, toolbox: Toolbox
) -> None:
    boss = AgentManifest.model_validate(
        {"name": "boss", "instructions": "x", "tools": ["agents.call"], "calls": ["helper"]}
    )
    context = ToolContext(janus, "default", boss, run_id="r1", step_key="s")
    assert toolbox.check(context, "agents.call", {"agent": "helper", "input": "hi"})
    with pytest.raises(ToolRefusedError, match="may not call agent 'stranger'"):
        toolbox.check(context, "agents.call", {"agent": "stranger", "input": "hi"})
    (refused,) = janus.events.query(type="agent.tool.refused")
    assert refused.actor == "agent:boss" and refused.payload["tool"] == "agents.call"

    def problems(text: str) -> list[str]:
        with pytest.raises(SpecError) as info:
            load_manifest(parse_text(text, "agents/x.yaml"), toolbox)
        return [str(p) for p in info.value.problems]

    assert problems("name: x\ninstructions: y\ntools: [agents.call]\n") == [
        "agents/x.yaml:3: tools.0: agents.call needs `calls`: the agents this one may ask"
    ]
    (required,) = problems("name: x\ninstructions: y\nmodel: {tool_choice: required}\n")
    assert required.startswith("agents/x.yaml:3: model.tool_choice: tool_choice required needs")
