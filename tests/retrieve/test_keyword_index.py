"""The keyword index inside the ledger (revision 0003), on SQLite and PostgreSQL.

Chunks are written with plain SQL/ORM, not through Janus: the index must
follow every insert, update and delete by itself (triggers on SQLite, a
generated column on PostgreSQL), and an index built over existing chunks
by the migration must equal one maintained from the start.
"""

from __future__ import annotations

import ledger_rows
import pytest
from sqlalchemy import delete, text, update

from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Chunk
from janus_stack.retrieve import Filters, fulltext, keyword

TENANT = "acme"
TEXTS = {
    "alpha": "The quarzonite mortar held the lighthouse together for a century.",
    "beta": "Ultramarine paint covered the harbour walls of Aarhus.",
    "gamma": "Mortar and paint: the restorers' shopping list, AND OR ( NEAR quoted.",
}


def add_document(ledger: Ledger, name: str, status: str = "done", tenant: str = TENANT) -> str:
    """One document with one version and one chunk of ``TEXTS[name]``; returns the chunk id."""
    [chunk_id] = ledger_rows.add_document(
        ledger, tenant, name, [TEXTS[name]], status=status, source=f"/{name}.txt"
    )
    return chunk_id


def found(ledger: Ledger, query: str, tenant: str = TENANT, **filters: str) -> list[str]:
    return [c.chunk_id for c in keyword.search(ledger, tenant, query, Filters.parse(filters), 10)]


def indexed(ledger: Ledger) -> set[str]:
    with ledger.session() as session:
        return set(session.scalars(fulltext.indexed_chunks(ledger)))


def test_the_index_follows_inserts_updates_and_deletes(ledger: Ledger) -> None:
    alpha, beta, gamma = (add_document(ledger, name) for name in TEXTS)
    assert fulltext.structure_problems(ledger) == []
    assert indexed(ledger) == {alpha, beta, gamma}
    assert found(ledger, "quarzonite") == [alpha]
    assert set(found(ledger, "mortar paint")) == {alpha, beta, gamma}
    assert found(ledger, "mortar paint")[0] == gamma  # both words beat one
    assert found(ledger, "harbours") == [beta]  # stemmed
    assert found(ledger, "quarzonite", tenant="other") == []
    assert found(ledger, "quarzonite", source="/beta.txt") == []

    with ledger.session() as session:
        session.execute(update(Chunk).where(Chunk.id == alpha).values(text="A granite lighthouse."))
    assert found(ledger, "quarzonite") == []
    assert found(ledger, "granite") == [alpha]
    with ledger.session() as session:
        session.execute(delete(Chunk).where(Chunk.id == beta))
    assert found(ledger, "ultramarine") == []
    assert indexed(ledger) == {alpha, gamma}
    assert fulltext.structure_problems(ledger) == []


def test_only_chunks_of_done_versions_are_found(ledger: Ledger) -> None:
    add_document(ledger, "alpha", status="pending")
    beta = add_document(ledger, "beta", status="done")
    add_document(ledger, "gamma", status="deleted")
    assert found(ledger, "quarzonite ultramarine restorers") == [beta]


@pytest.mark.parametrize(
    "query",
    ['"AND OR (', "NEAR(", "a:b", "*", "-", "''", '"', "x" * 500, "ö ß 東京", "\\", "a & !b"],
)
def test_no_query_text_is_syntax(ledger: Ledger, query: str) -> None:
    gamma = add_document(ledger, "gamma")
    result = found(ledger, query)
    assert result in ([], [gamma])
    assert found(ledger, '"AND OR ( NEAR') == [gamma]


def test_the_migration_indexes_chunks_written_before_it(ledger: Ledger) -> None:
    migrations.downgrade(ledger, "0002")
    # Revision 0002 knows nothing of the index: insert rows it never saw.
    alpha = add_document(ledger, "alpha")
    beta = add_document(ledger, "beta")
    migrations.upgrade(ledger)
    assert indexed(ledger) == {alpha, beta}
    assert found(ledger, "quarzonite") == [alpha]
    assert fulltext.structure_problems(ledger) == []
    gamma = add_document(ledger, "gamma")
    assert found(ledger, "restorers") == [gamma]


def test_structural_damage_is_named_and_rebuild_restores_content(ledger: Ledger) -> None:
    alpha = add_document(ledger, "alpha")
    beta = add_document(ledger, "beta")
    if ledger.dialect == "postgresql":
        with ledger.engine.begin() as connection:
            connection.execute(text("DROP INDEX ix_chunks_search_vector"))
        assert fulltext.structure_problems(ledger) == ["index ix_chunks_search_vector is missing"]
        return
    with ledger.engine.begin() as connection:
        connection.execute(text("DELETE FROM chunks_fts_keys WHERE chunk_id = :id"), {"id": beta})
    problems = fulltext.structure_problems(ledger)
    assert len(problems) == 1 and "integrity-check" in problems[0]
    assert indexed(ledger) == {alpha}
    fulltext.rebuild(ledger)
    assert fulltext.structure_problems(ledger) == []
    assert indexed(ledger) == {alpha, beta} and found(ledger, "ultramarine") == [beta]
    with ledger.engine.begin() as connection:
        connection.execute(text("DROP TRIGGER chunks_fts_delete"))
    assert fulltext.structure_problems(ledger) == ["trigger chunks_fts_delete is missing"]
