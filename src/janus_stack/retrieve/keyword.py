"""Keyword search: BM25-style full text over the chunks, inside the ledger.

The index is the ledger's own (see :mod:`janus_stack.retrieve.fulltext`):
FTS5 ranked by ``bm25()`` on SQLite, a ``tsvector`` ranked by
``ts_rank_cd`` (length-normalised) on PostgreSQL. Scores are "higher is
better" on both, but are not comparable between the two engines.

User text never reaches a query parser as syntax. The query is cut into
words (``\\w+``); stop words go unless nothing else is left; each word
becomes a quoted FTS5 string or a ``plainto_tsquery``, and the words are
OR-ed, so a chunk matching more (and rarer) words ranks higher, and
``"AND OR (`` is three ordinary words.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    Select,
    Subquery,
    exists,
    func,
    literal_column,
    select,
)

from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Chunk
from janus_stack.retrieve.chunks import live_version_exists, query_terms
from janus_stack.retrieve.filters import Filters
from janus_stack.retrieve.fulltext import PG_CONFIG, fts, keys, search_vector
from janus_stack.retrieve.types import Candidate

MAX_TERMS = 32
RANK_FIRST_DEPTH = 200


def fts5_query(terms: Sequence[str]) -> str:
    """An FTS5 MATCH expression OR-ing ``terms`` as quoted strings."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def search(
    ledger: Ledger, tenant: str, query: str, filters: Filters, limit: int
) -> list[Candidate]:
    """The ``limit`` best-matching live chunks of ``tenant``, best first."""
    terms = query_terms(query)[:MAX_TERMS]
    if not terms:
        return []
    live = exists(live_version_exists(tenant, filters))
    if ledger.dialect == "sqlite":
        return _search_sqlite(ledger, tenant, terms, live, limit)
    tsquery = _tsquery(terms)
    rank = func.ts_rank_cd(search_vector, tsquery, 1)
    statement = (
        select(Chunk.id, rank)
        .where(search_vector.op("@@")(tsquery), Chunk.tenant_id == tenant, live)
        .order_by(rank.desc(), Chunk.id)
        .limit(limit)
    )
    with ledger.session() as session:
        rows = session.execute(statement).all()
    return [Candidate(chunk_id=row[0], score=float(row[1])) for row in rows]


def _search_sqlite(
    ledger: Ledger, tenant: str, terms: Sequence[str], live: ColumnElement[bool], limit: int
) -> list[Candidate]:
    """Rank in FTS5 first, then check liveness and filters on the best few only.

    The live-version check costs a few index lookups per chunk; applied to
    every match of a common word it dominated the query (≈190 ms at 100k
    chunks, against ≈40 ms ranked first). When too few of the best
    ``depth`` survive the check (a selective filter, many replaced
    versions), the whole match set is checked after all.
    """
    table: ColumnClause[Any] = literal_column("chunks_fts")
    rank = func.bm25(table)
    matching = (
        select(keys.c.chunk_id.label("chunk_id"), rank.label("rank"))
        .select_from(fts)
        .join(keys, keys.c.key == fts.c.rowid)
        .where(table.op("MATCH")(fts5_query(terms)), keys.c.tenant_id == tenant)
    )
    depth = max(4 * limit, RANK_FIRST_DEPTH)
    best = matching.order_by(rank).limit(depth).subquery()
    with ledger.session() as session:
        rows = session.execute(_live_first(best, live, limit)).all()
        if (
            len(rows) < limit
            and (session.scalar(select(func.count()).select_from(best)) or 0) == depth
        ):
            rows = session.execute(_live_first(matching.subquery(), live, limit)).all()
    return [Candidate(chunk_id=row[0], score=-float(row[1])) for row in rows]  # bm25: lower wins


def _live_first(ranked: Subquery, live: ColumnElement[bool], limit: int) -> Select[Any]:
    return (
        select(Chunk.id, ranked.c.rank)
        .join(ranked, ranked.c.chunk_id == Chunk.id)
        .where(live)
        .order_by(ranked.c.rank, Chunk.id)
        .limit(limit)
    )


def _tsquery(terms: Sequence[str]) -> ColumnElement[object]:
    config: ColumnClause[Any] = literal_column(f"'{PG_CONFIG}'::regconfig")
    parts = [func.plainto_tsquery(config, term) for term in terms]
    return functools.reduce(lambda left, right: left.op("||")(right), parts)
