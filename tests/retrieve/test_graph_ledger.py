"""Graph search's mention ranking in SQL: the same chunks, in the same order, as ranking in Python.

Mentions are written straight into a scratch ledger; the reference reads
every mention row and sorts the chunks by the summed weight of the query
entities they name (in entity ID order), then mentions, then chunk ID.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import ledger_rows
import pytest
from sqlalchemy import select

from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import (
    Entity,
    Mention,
)
from janus_stack.retrieve import Filters
from janus_stack.retrieve.graph_ledger import best_mentions
from janus_stack.urls import SlotURL

TENANT = "acme"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(SlotURL.parse("relational", f"sqlite:///{tmp_path}/ledger.db")) as opened:
        migrations.upgrade(opened)
        yield opened


def add_document(ledger: Ledger, name: str, status: str, chunks: int) -> list[str]:
    """A document of ``chunks`` chunks whose version has ``status``; returns the chunk IDs."""
    texts = [f"chunk {ordinal}" for ordinal in range(chunks)]
    return ledger_rows.add_document(ledger, TENANT, name, texts, status=status)


def add_mentions(
    ledger: Ledger, rng: random.Random, chunks: list[str], entities: list[str]
) -> None:
    with ledger.session() as session:
        for entity_id in entities:
            if session.get(Entity, entity_id) is None:
                session.add(
                    Entity(
                        id=entity_id,
                        tenant_id=TENANT,
                        name=entity_id,
                        normalised_name=entity_id,
                        type="ORG",
                    )
                )
        session.flush()
        for chunk_id in chunks:
            for entity_id in rng.sample(entities, rng.randint(0, min(3, len(entities)))):
                for start in range(rng.choice((1, 1, 2, 3))):
                    session.add(
                        Mention(
                            tenant_id=TENANT,
                            chunk_id=chunk_id,
                            entity_id=entity_id,
                            doc_id="d",
                            char_start=start,
                            char_end=start + 1,
                        )
                    )


def reference(
    ledger: Ledger, weight: dict[str, float], live: set[str], limit: int
) -> list[tuple[str, str, int]]:
    named: dict[str, dict[str, int]] = {}
    with ledger.session() as session:
        for chunk_id, entity_id in session.execute(
            select(Mention.chunk_id, Mention.entity_id).where(Mention.entity_id.in_(list(weight)))
        ):
            counts = named.setdefault(chunk_id, {})
            counts[entity_id] = counts.get(entity_id, 0) + 1
    order = sorted(
        (c for c in named if c in live),
        key=lambda c: (
            -sum(weight[e] for e in sorted(named[c])),
            -sum(named[c].values()),
            c,
        ),
    )
    return [(c, e, named[c][e]) for c in order[:limit] for e in sorted(named[c])]


def test_sql_ranking_equals_ranking_every_mention_in_python(ledger: Ledger) -> None:
    rng = random.Random(3)
    entities = [f"e{i}" for i in range(6)]
    live = add_document(ledger, "done", "done", 300)
    gone = add_document(ledger, "failed", "failed", 100)
    add_mentions(ledger, rng, live + gone, entities)
    for _ in range(20):
        chosen = rng.sample(entities, rng.randint(1, 5))
        # Coarse weights: whole sets of entities tie, and mentions and IDs must decide.
        weight = {e: rng.choice((0.5, 1.0, 1.5)) for e in chosen}
        for limit in (1, 7, 50, 1000):
            found = best_mentions(ledger, TENANT, Filters.parse(None), weight, limit)
            assert found == reference(ledger, weight, set(live), limit)


def test_rejected_chunks_are_replaced_by_the_next_best(ledger: Ledger) -> None:
    rng = random.Random(4)
    gone = add_document(ledger, "failed", "failed", 40)
    live = add_document(ledger, "done", "done", 40)
    add_mentions(ledger, rng, gone + live, ["e0", "e1"])
    # The failed version's chunks are ranked too, and fill whole batches of ``limit``.
    weight = {"e0": 1.0, "e1": 0.25}
    for limit in (1, 3, 10):
        found = best_mentions(ledger, TENANT, Filters.parse(None), weight, limit)
        assert found == reference(ledger, weight, set(live), limit)
        assert {chunk for chunk, _, _ in found} <= set(live)
