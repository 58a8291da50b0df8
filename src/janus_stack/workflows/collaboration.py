"""Which agents worked together, on which runs and topics — written to the graph.

When a run finishes, its participants (the agents of its steps and of the
tool calls they made, including agents reached through ``agents.call``)
become part of the tenant's memory::

    (AGENT)-[PARTICIPATED_IN]->(RUN)-[ABOUT]->(topic entity of the memory)
    (AGENT)-[COLLABORATED_WITH]->(AGENT)        # once per pair, by name order

An agent's entity id is ``ids.entity_id(tenant, name, "AGENT")`` and a
run's ``ids.entity_id(tenant, run_id, "RUN")``, so any caller can find
them (``graph.neighbourhood(tenant, [agent_entity_id(tenant, name)])``).
Topics are the entities of the memory the run's inputs name, found by the
entity linker, that the graph holds.

Graph relations need supporting chunk ids; these carry ``run:<run id>``
per run instead (a relation seen in several runs carries each). The ledger
is the source of truth here too: every item a run projected is a row of
``agent_graph``, written before the graph, and ``janus verify`` counts
those rows next to what documents contributed. Projection is idempotent
(upserts by deterministic id), so re-running it after a crash is safe.

A topic belongs to the documents, not to the runs: an ``ABOUT`` edge
points into the memory but does not keep an entity in it. When deleting
documents takes the last support of a topic entity from the ledger,
:func:`release_topics` drops its ``ABOUT`` rows and the entity (with those
edges) from the graph, so delete and ``janus verify`` agree; the agents,
runs and their other edges stay.
"""

from __future__ import annotations

import json
from itertools import combinations
from typing import Any, cast

from sqlalchemy import Table, delete, exists, func, insert, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from janus_stack.context import Janus
from janus_stack.ids import entity_id
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Entity as LedgerEntity
from janus_stack.retrieve.linking import EntityLinker
from janus_stack.slots.graph import Entity, Relation
from janus_stack.workflows.models import AgentGraphItem
from janus_stack.workflows.store import RunRecord, RunStore

ITEMS = cast(Table, AgentGraphItem.__table__)
AGENT, RUN = "AGENT", "RUN"
PARTICIPATED_IN, COLLABORATED_WITH, ABOUT = "PARTICIPATED_IN", "COLLABORATED_WITH", "ABOUT"
MAX_TOPICS = 8
MAX_TOPIC_TEXT = 4000


def agent_entity_id(tenant: str, name: str) -> str:
    return entity_id(tenant, name, AGENT)


def run_entity_id(tenant: str, run_id: str) -> str:
    return entity_id(tenant, run_id, RUN)


def support_id(run_id: str) -> str:
    """The synthetic "chunk" that supports a relation a run contributed."""
    return f"run:{run_id}"


def ledger_counts(ledger: Ledger, tenant: str) -> dict[str, int]:
    """How many distinct entities and relations the runs of ``tenant`` put in the graph."""
    query = (
        select(ITEMS.c.kind, func.count(func.distinct(ITEMS.c.item_id)))
        .where(ITEMS.c.tenant_id == tenant)
        .group_by(ITEMS.c.kind)
    )
    with ledger.engine.connect() as connection:
        found = {str(kind): int(n) for kind, n in connection.execute(query)}
    return {"entities": found.get("entity", 0), "relations": found.get("relation", 0)}


def release_topics(janus: Janus, tenant: str) -> list[str]:
    """Forget the run topics of ``tenant`` the ledger no longer holds; returns their ids.

    The ledger rows go first: a crash before the graph follows leaves an
    extra entity that ``janus verify`` reports, never a ledger claiming
    edges the graph lost.
    """
    known = select(LedgerEntity.id).where(LedgerEntity.id == ITEMS.c.target_id)
    about = (ITEMS.c.tenant_id == tenant, ITEMS.c.kind == "relation", ITEMS.c.type == ABOUT)
    with janus.ledger.engine.connect() as connection:
        gone = sorted(
            str(row[0])
            for row in connection.execute(
                select(ITEMS.c.target_id).distinct().where(*about, ~exists(known))
            )
        )
    if not gone:
        return []
    with janus.ledger.engine.begin() as connection:
        connection.execute(delete(ITEMS).where(*about, ITEMS.c.target_id.in_(gone)))
    janus.graph.delete_entities(tenant, gone)
    return gone


class Collaboration:
    """Projects finished runs of one ``Janus`` context into its graph."""

    def __init__(self, janus: Janus, store: RunStore) -> None:
        self.janus = janus
        self.store = store
        self.linker = EntityLinker(None)

    def participants(self, run_id: str) -> list[str]:
        names = {s.agent for s in self.store.steps(run_id).values() if s.agent}
        for call in self.store.calls(run_id):
            if call["agent"]:
                names.add(call["agent"])
        names.update(self.store.called_agents(run_id))
        return sorted(names)

    def topics(self, run: RunRecord) -> list[Entity]:
        values = run.inputs.values()
        parts = [v if isinstance(v, str) else json.dumps(v, default=str) for v in values]
        text = " ".join(parts)[:MAX_TOPIC_TEXT]
        if not text.strip():
            return []
        linked = self.linker.link(self.janus.ledger, run.tenant, text, limit=MAX_TOPICS)
        return self.janus.graph.get_entities(run.tenant, [e.id for e in linked])

    def project(self, run: RunRecord) -> dict[str, int]:
        """Write the run's agents, topics and their relations; returns what was written."""
        names = self.participants(run.id)
        if not names:
            return {"agents": 0, "topics": 0, "relations": 0}
        tenant, support = run.tenant, (support_id(run.id),)
        run_node = Entity(
            run_entity_id(tenant, run.id),
            tenant,
            f"run {run.id[:8]} ({run.workflow})",
            RUN,
            {"run_id": run.id, "workflow": run.workflow, "status": run.status},
        )
        agents = [
            Entity(agent_entity_id(tenant, name), tenant, name, AGENT, {"agent": name})
            for name in names
        ]
        topics = self.topics(run)
        relations = [Relation(tenant, a.id, run_node.id, PARTICIPATED_IN, support) for a in agents]
        relations += [
            Relation(tenant, a.id, b.id, COLLABORATED_WITH, support)
            for a, b in combinations(agents, 2)
        ]
        relations += [Relation(tenant, run_node.id, t.id, ABOUT, support) for t in topics]
        rows: list[dict[str, Any]] = [
            {"kind": "entity", "item_id": e.id, "type": e.type}
            | {"source_id": None, "target_id": None}
            for e in [*agents, run_node]
        ]
        rows += [
            {
                "kind": "relation",
                "item_id": r.id,
                "type": r.type,
                "source_id": r.source_id,
                "target_id": r.target_id,
            }
            for r in relations
        ]
        self._record(tenant, run.id, rows)
        self.janus.graph.upsert_entities([*agents, run_node])
        self.janus.graph.upsert_relations(relations)
        return {"agents": len(agents), "topics": len(topics), "relations": len(relations)}

    def _record(self, tenant: str, run_id: str, rows: list[dict[str, Any]]) -> None:
        with self.store.ledger.engine.connect() as connection:
            seen = {
                (kind, item)
                for kind, item in connection.execute(
                    select(ITEMS.c.kind, ITEMS.c.item_id).where(
                        ITEMS.c.tenant_id == tenant, ITEMS.c.run_id == run_id
                    )
                )
            }
        fresh = [
            {**row, "tenant_id": tenant, "run_id": run_id}
            for row in rows
            if (row["kind"], row["item_id"]) not in seen
        ]
        if not fresh:
            return
        try:
            with self.store.transaction() as c:
                c.execute(insert(ITEMS), fresh)
        except SAIntegrityError:  # another process recorded the same run meanwhile
            return
