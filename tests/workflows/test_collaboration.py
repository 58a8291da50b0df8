"""Collaboration memory: the semantic cache of agent steps and the agent graph.

Agents run without a model (``none``), so a step's output is its input's
leading sentences: a cache hit is visible because the output is the
*earlier* prompt's text. The graph tests ingest one small document so a
run's inputs name entities of the memory.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
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

from janus_stack.agents import SpecError, Toolbox
from janus_stack.agents.registry import load_manifest
from janus_stack.agents.sourcefile import parse_text
from janus_stack.cli import app
from janus_stack.context import Janus
from janus_stack.ingest.pipeline import IngestOptions, Ingestor
from janus_stack.ingest.removal import delete_document
from janus_stack.ledger.models import Document
from janus_stack.ops.verify import verify
from janus_stack.retrieve.memory import recall
from janus_stack.workflows.cache import ENTRIES
from janus_stack.workflows.collaboration import agent_entity_id, run_entity_id, support_id
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec

Make = Callable[[str], WorkflowSpec]
FIRST = "Alice Johnson leads the Apollo project at Acme Corporation in London."
NEAR = "Alice Johnson leads the Apollo project at Acme Corporation in London!"
OTHER = "The quarterly budget for office furniture was approved on Tuesday."
CACHED = "name: {name}\ninstructions: condense\nmodel: none\ncache: {{threshold: 0.9}}\n"


@pytest.fixture(name="agents")
def agents_fixture(home: Path) -> None:
    for name in ("scribe", "clerk"):
        write(home / "agents" / f"{name}.yaml", CACHED.format(name=name))


@pytest.fixture(name="one_step")
def one_step_fixture(agents: None, workflow: Make) -> Callable[[str], WorkflowSpec]:
    def make(agent: str) -> WorkflowSpec:
        return workflow(f"""
            name: single-{agent}
            inputs: {{q: {{}}}}
            steps: [{{id: ask, kind: agent, agent: {agent}, input: "{{{{ inputs.q }}}}"}}]
        """)

    return make


def step_of(runs: Runs, run_id: str, key: str = "ask") -> dict[str, object]:
    run = runs.store.run(run_id)
    assert run.status == "done", run.error
    return runs.store.steps(run_id)[key].as_dict()


def stats(runs: Runs, agent: str, tenant: str = "default") -> tuple[int, int]:
    for row in runs.engine.cache.stats(tenant):
        if row["agent"] == agent:
            return row["hits"], row["misses"]
    return 0, 0


def test_a_near_identical_prompt_reuses_the_stored_result(
    runs: Runs, one_step: Callable[[str], WorkflowSpec]
) -> None:
    spec = one_step("scribe")
    first = step_of(runs, execute(runs, spec, {"q": FIRST}))
    assert first["cache"] == "miss" and first["output"]["text"] == FIRST  # type: ignore[index]

    second_id = execute(runs, spec, {"q": NEAR})
    second = step_of(runs, second_id)
    assert second["cache"] == "hit"
    assert second["output"] == first["output"]  # the earlier prompt's result, not NEAR
    assert second["prompt_tokens"] == second["completion_tokens"] == 0 and second["cost"] == 0
    cached = runs.janus.events.query(subject=f"run:{second_id}", type="workflow.step.cached")
    assert len(cached) == 1 and cached[0].payload["similarity"] >= 0.9
    journal = [c for c in runs.store.calls(second_id) if c["tool"] == "agent.cache"]
    assert [(c["step"], c["status"]) for c in journal] == [("ask", "done")]
    assert runs.store.tokens(second_id)[0][2] == FIRST
    assert stats(runs, "scribe") == (1, 1)
    assert runs.store.run(second_id).as_dict()["usage"]["prompt_tokens"] == 0

    shown = CliRunner().invoke(app, ["agents", "cache-stats", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == [
        {"tenant": "default", "agent": "scribe", "hits": 1, "misses": 1, "hit_rate": 0.5}
    ]


def test_other_agents_tenants_distant_prompts_and_old_entries_miss(
    runs: Runs, one_step: Callable[[str], WorkflowSpec]
) -> None:
    scribe, clerk = one_step("scribe"), one_step("clerk")
    assert step_of(runs, execute(runs, scribe, {"q": FIRST}))["cache"] == "miss"

    assert step_of(runs, execute(runs, clerk, {"q": NEAR}))["cache"] == "miss"  # other agent
    other_tenant = execute(runs, scribe, {"q": NEAR}, tenant="globex")
    assert step_of(runs, other_tenant)["cache"] == "miss"
    below = step_of(runs, execute(runs, scribe, {"q": OTHER}))  # below the threshold
    assert below["cache"] == "miss" and below["output"]["text"] == OTHER  # type: ignore[index]

    with runs.janus.ledger.engine.begin() as connection:  # every entry is now 2 hours old
        connection.execute(
            update(ENTRIES).values(created_at=ENTRIES.c.created_at - timedelta(hours=2))
        )
    expired = step_of(runs, execute(runs, scribe, {"q": FIRST}))  # past the 1 h default TTL
    assert expired["cache"] == "miss"
    assert step_of(runs, execute(runs, scribe, {"q": NEAR}))["cache"] == "hit"  # stored again

    assert stats(runs, "scribe") == (1, 3)
    assert stats(runs, "clerk") == (0, 1)
    assert stats(runs, "scribe", tenant="globex") == (0, 1)


def test_a_resumed_run_replays_its_cached_step_exactly(
    runs: Runs, one_step: Callable[[str], WorkflowSpec], workflow: Make, calls: Calls
) -> None:
    execute(runs, one_step("scribe"), {"q": FIRST})  # primes the cache
    spec = workflow("""
        name: cached-then-human
        inputs: {q: {}}
        steps:
          - {id: ask, kind: agent, agent: scribe, input: "{{ inputs.q }}"}
          - {id: approve, kind: human, prompt: "Send {{ steps.ask.output.text }}?"}
          - {id: send, kind: tool, tool: test.effect,
             arguments: {label: "{{ steps.ask.output.text }}"}}
    """)
    run_id = execute(runs, spec, {"q": NEAR})
    assert runs.store.run(run_id).status == "paused"
    assert runs.store.steps(run_id)["ask"].cache == "hit"

    with runs.janus.ledger.engine.begin() as connection:  # a fresh lookup would now miss
        connection.execute(ENTRIES.delete())
    runs.feedback(run_id, "yes")
    runs.resume(run_id)
    assert runs.engine.execute(run_id) == "done"
    steps = runs.store.steps(run_id)
    assert steps["ask"].cache == "hit" and steps["ask"].output is not None
    assert steps["ask"].output["text"] == FIRST
    assert [c["label"] for c in calls.seen] == [FIRST]
    done = runs.janus.events.query(subject=f"run:{run_id}", type="workflow.step.done")
    assert set(Counter(e.payload["step"] for e in done).values()) == {1}

    # A crash after the decision was journaled re-takes the same decision.
    manifest = runs.engine.registry.get("scribe")
    again = runs.engine.cache.decide(run_id, "default", "ask", manifest, NEAR)
    assert again.hit and again.output == steps["ask"].output


def ingest_memory(janus: Janus, home: Path) -> None:
    doc = write(
        home / "docs" / "apollo.md",
        """
        # Apollo

        Alice Johnson leads the Apollo project at Acme Corporation in London.
        Alice Johnson met Viktor Petrov at Acme Corporation.
        """,
    )
    report = Ingestor(janus, janus.embedder, IngestOptions()).ingest([doc], tenant="default")
    assert not report.failed, report.as_dict()


@pytest.fixture(name="duo")
def duo_fixture(home: Path, janus: Janus, workflow: Make) -> WorkflowSpec:
    """A researcher then a writer (no model) over the ingested Apollo memory."""
    ingest_memory(janus, home)
    for name in ("researcher", "writer"):
        write(home / "agents" / f"{name}.yaml", f"name: {name}\ninstructions: work\nmodel: none\n")
    return workflow("""
        name: duo
        inputs: {q: {}}
        steps:
          - {id: research, kind: agent, agent: researcher, input: "{{ inputs.q }}"}
          - {id: draft, kind: agent, agent: writer, input: "{{ steps.research.output }}"}
    """)


def test_a_two_agent_run_is_remembered_in_the_graph_and_verify_agrees(
    runs: Runs, janus: Janus, duo: WorkflowSpec
) -> None:
    question = "What does Alice Johnson do at Acme Corporation?"
    first, second = (execute(runs, duo, {"q": question}) for _ in range(2))
    assert runs.store.run(first).status == runs.store.run(second).status == "done"

    researcher = agent_entity_id("default", "researcher")
    near = janus.graph.neighbourhood("default", [researcher], hops=2, limit=100)
    kinds = {e.id: e.type for e in near.entities}
    names = {e.name for e in near.entities}
    assert kinds[agent_entity_id("default", "writer")] == "AGENT"
    assert kinds[run_entity_id("default", first)] == "RUN"
    assert {"Alice Johnson", "Acme Corporation"} <= names  # the run's topics
    by_type = Counter(r.type for r in near.relations)
    assert by_type["PARTICIPATED_IN"] == 4 and by_type["COLLABORATED_WITH"] == 1
    assert by_type["ABOUT"] >= 2
    pair = next(r for r in near.relations if r.type == "COLLABORATED_WITH")
    assert set(pair.chunk_ids) == {support_id(first), support_id(second)}
    recorded = janus.events.query(subject=f"run:{first}", type="workflow.collaboration.recorded")
    assert recorded[0].payload["agents"] == 2

    view = recall(janus, "researcher", tenant="default")  # `janus memory researcher`
    assert view.entity is not None and view.entity["type"] == "AGENT"
    assert ("COLLABORATED_WITH", "writer") in {(n.relation, n.name) for n in view.neighbours}

    report = verify(janus, "default")
    assert report.ok, report.as_dict()
    counts = report.as_dict()["tenants"]["default"]["graph"]["counts"]
    assert counts["entities"]["store"] == counts["entities"]["ledger"]


def test_a_cache_policy_is_refused_for_an_agent_that_writes(toolbox: Toolbox) -> None:
    text = (
        "name: w\ninstructions: hi\ntools: [memory.remember]\n"
        "memory: {write: {tenants: [default]}}\ncache: true\n"
    )
    with pytest.raises(SpecError) as info:
        load_manifest(parse_text(text, "agents/w.yaml"), toolbox, None)
    assert any("a cached step would skip the write" in str(p) for p in info.value.problems)
    plain = load_manifest(parse_text(text.replace("memory.remember", "memory.ask"), "a"), toolbox)
    assert plain.cache is not None and plain.cache.threshold == 0.95


def test_deleting_the_last_document_of_a_topic_lets_it_go_and_verify_agrees(
    runs: Runs, janus: Janus, duo: WorkflowSpec
) -> None:
    run_id = execute(runs, duo, {"q": "What does Alice Johnson do at Acme Corporation?"})
    run_node = run_entity_id("default", run_id)
    topics = [
        e.id
        for e in janus.graph.neighbourhood("default", [run_node], hops=1, limit=100).entities
        if e.type not in ("AGENT", "RUN")
    ]
    assert topics  # the run is ABOUT entities of the document

    with janus.ledger.session() as session:
        (document_id,) = session.scalars(select(Document.id).where(Document.tenant_id == "default"))
    delete_document(janus, "default", document_id)

    assert janus.graph.get_entities("default", topics) == []  # no ABOUT edge keeps them
    left = janus.graph.neighbourhood("default", [run_node], hops=1, limit=100)
    assert {e.type for e in left.entities} == {"AGENT", "RUN"}
    assert "ABOUT" not in {r.type for r in left.relations}
    report = verify(janus, "default")
    assert report.ok, report.as_dict()
    counts = report.as_dict()["tenants"]["default"]["graph"]["counts"]
    assert counts["entities"]["store"] == counts["entities"]["ledger"] == 3  # 2 agents, 1 run
    assert counts["relations"]["store"] == counts["relations"]["ledger"]
