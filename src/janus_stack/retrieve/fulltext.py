"""The keyword index inside the ledger: its shape per database, its health, its rebuild.

Revision 0003 creates it (see that file for the design): on SQLite an FTS5
table over ``chunks`` through a stable integer key table, kept in step by
triggers; on PostgreSQL a generated ``tsvector`` column with a GIN index.
Either way the database maintains it on every write to ``chunks``. What can
still go wrong is structural — a trigger dropped by a table rebuild, an
index edited by hand — and :func:`structure_problems` finds exactly that,
while the membership queries let ``janus verify`` compare the index with
the chunks of live versions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnClause, Select, column, exists, select, table, text
from sqlalchemy.exc import DBAPIError

from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Chunk

SQLITE_ENGINE = "sqlite-fts5-bm25"
POSTGRES_ENGINE = "postgresql-tsvector-ts_rank_cd"
TRIGGERS = ("chunks_fts_insert", "chunks_fts_delete", "chunks_fts_update")
PG_CONFIG = "english"

fts = table("chunks_fts", column("rowid"), column("text"))
keys = table("chunks_fts_keys", column("key"), column("chunk_id"), column("tenant_id"))
docsize = table("chunks_fts_docsize", column("id"))
search_vector: ColumnClause[Any] = column("search_vector")


def engine_name(ledger: Ledger) -> str:
    return SQLITE_ENGINE if ledger.dialect == "sqlite" else POSTGRES_ENGINE


def structure_problems(ledger: Ledger) -> list[str]:
    """What is missing or corrupt in the index's structure (empty when sound)."""
    if ledger.dialect == "sqlite":
        return _sqlite_problems(ledger)
    return _postgres_problems(ledger)


def _sqlite_problems(ledger: Ledger) -> list[str]:
    with ledger.engine.connect() as connection:
        names = set(
            connection.execute(
                text("SELECT name FROM sqlite_master WHERE type IN ('table', 'view', 'trigger')")
            ).scalars()
        )
    problems = [
        f"{kind} {name} is missing"
        for kind, name in (
            ("table", "chunks_fts"),
            ("table", "chunks_fts_keys"),
            ("view", "chunks_fts_content"),
            *(("trigger", trigger) for trigger in TRIGGERS),
        )
        if name not in names
    ]
    if problems:
        return problems
    try:
        with ledger.engine.begin() as connection:
            # rank 1: also compare the index with its content (keys joined to chunks).
            connection.execute(
                text("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 1)")
            )
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return [f"the FTS5 index disagrees with the chunks (integrity-check: {reason})"]
    return []


def _postgres_problems(ledger: Ledger) -> list[str]:
    with ledger.engine.connect() as connection:
        has_column = connection.execute(
            text(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = 'chunks' AND column_name = 'search_vector'"
            )
        ).scalar_one()
        has_index = connection.execute(
            text(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = 'chunks' AND indexname = 'ix_chunks_search_vector'"
            )
        ).scalar_one()
    problems = []
    if not has_column:
        problems.append("column chunks.search_vector is missing")
    if not has_index:
        problems.append("index ix_chunks_search_vector is missing")
    return problems


def indexed_chunks(ledger: Ledger) -> Select[Any]:
    """The IDs of the chunks the index holds (a subquery)."""
    if ledger.dialect == "sqlite":
        return select(keys.c.chunk_id).where(
            exists(select(docsize.c.id).where(docsize.c.id == keys.c.key))
        )
    return select(Chunk.id).where(search_vector.is_not(None))


def orphan_entries(ledger: Ledger, tenant: str) -> Select[Any] | None:
    """Index entries of ``tenant`` whose chunk is gone, by ``keys.c.chunk_id``.

    None on PostgreSQL, where a generated column cannot outlive its row.
    """
    if ledger.dialect != "sqlite":
        return None
    return select(keys.c.chunk_id).where(
        keys.c.tenant_id == tenant,
        ~exists(select(Chunk.id).where(Chunk.id == keys.c.chunk_id)),
    )


def rebuild(ledger: Ledger) -> None:
    """Re-create the index's contents from ``chunks`` (after a structural repair).

    On SQLite the key table is re-derived (keys of vanished chunks dropped,
    keys for chunks that lack one added) and FTS5 rebuilds the index from
    its content view. On PostgreSQL the generated column cannot diverge;
    the GIN index is re-indexed.
    """
    with ledger.engine.begin() as connection:
        if ledger.dialect == "sqlite":
            connection.execute(
                text("DELETE FROM chunks_fts_keys WHERE chunk_id NOT IN (SELECT id FROM chunks)")
            )
            connection.execute(
                text(
                    "INSERT INTO chunks_fts_keys (chunk_id, tenant_id) SELECT id, tenant_id "
                    "FROM chunks WHERE id NOT IN (SELECT chunk_id FROM chunks_fts_keys) "
                    "ORDER BY id"
                )
            )
            connection.execute(text("INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild')"))
        else:
            connection.execute(text("REINDEX INDEX ix_chunks_search_vector"))
