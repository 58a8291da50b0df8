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

import numpy as np
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
from sqlalchemy.orm import Session

from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Chunk
from janus_stack.retrieve.chunks import live_version_exists, query_terms
from janus_stack.retrieve.filters import Filters
from janus_stack.retrieve.fulltext import PG_CONFIG, fts, keys, search_vector
from janus_stack.retrieve.fulltext_topk import (
    SLACK,
    Postings,
    all_of,
    any_of,
    best_keys,
    best_missing_one,
    candidate_expression,
    postings_scores,
    term_bounds,
)
from janus_stack.retrieve.types import Candidate

MAX_TERMS = 32
RANK_FIRST_DEPTH = 200
RELAXATIONS = 2  # rarest terms let go when too few rows hold all
LIVE_SLACK = 10  # rows checked beyond ``limit`` at first (another tenant's, replaced versions)
MAX_POSTINGS_CHECKED = 2_000
_BATCH = 500


def fts5_query(terms: Sequence[str]) -> str:
    """An FTS5 MATCH expression OR-ing ``terms`` as quoted strings."""
    return any_of(terms)


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
    """The exact BM25 top ``limit`` of the OR of ``terms``, ranking few of its matches.

    Ranking every match of a common word cost ≈60 ms at 100k chunks. First
    the rows holding every term are ranked (few, and cheap to find; with
    fewer than ``limit`` of them, the rarest terms are let go one by one,
    which only lowers the scores seen). The ``limit``-th score bounds what
    the answer needs, and only the rows whose terms can reach that bound are
    ranked on the full OR (see :mod:`janus_stack.retrieve.fulltext_topk`).
    Scores and order are the same as ranking every match, which is what
    happens when no bound is found or the candidates are too many to name.

    When every term has cached postings, none of this runs: the postings
    give every matching row's exact score in a few milliseconds
    (:func:`_ranked_postings`).
    """
    full = fts5_query(terms)
    with ledger.session() as session:
        found, postings = term_bounds(ledger.derived, session.connection(), terms)
        bounds = dict(zip(terms, found, strict=True))
        present = sorted((t for t in terms if bounds[t] > 0), key=lambda t: -bounds[t])
        if not present:
            return []
        if postings is not None:
            ranked = _ranked_postings(session, postings, tenant, live, limit)
            if ranked is not None:
                return [Candidate(chunk_id=key, score=score) for key, score in ranked]
        weights = [bounds[term] for term in present]
        rows: list[tuple[str, float]] = []
        for dropped in range(min(RELAXATIONS, len(present) - 1) + 1):
            rows = _ranked(session, all_of(present[dropped:]), None, tenant, live, limit)
            if len(rows) == limit:
                break
        if len(rows) < limit:
            if len(present) > 1:  # one term: its AND was the whole OR already
                rows = _ranked(session, full, None, tenant, live, limit)
        elif dropped or best_missing_one(weights) >= -rows[-1][1] * (1 - SLACK):
            candidates = candidate_expression(present, weights, -rows[-1][1])
            rows = _ranked(session, full, candidates, tenant, live, limit)
    return [Candidate(chunk_id=key, score=-rank) for key, rank in rows]  # bm25: lower wins


def _ranked(
    session: Session,
    expression: str,
    candidates: str | None,
    tenant: str,
    live: ColumnElement[bool],
    limit: int,
) -> list[tuple[str, float]]:
    """The best ``limit`` live chunks of ``tenant`` matching ``expression`` (and ``candidates``).

    Ranked in FTS5 first, tenant, liveness and filters checked on the best
    few only: the live-version check costs a few index lookups per chunk
    (≈190 ms over every match of a common word at 100k chunks). ``bm25``
    scores every tenant's chunks on the same table-wide statistics, so the
    tenant's best are the first of its chunks in the global order. When too
    few of the best ``depth`` survive (another tenant's chunks, a selective
    filter, many replaced versions), all of the tenant's matches are checked.
    """
    table: ColumnClause[Any] = literal_column("chunks_fts")
    rank = func.bm25(table)
    conditions = [table.op("MATCH")(expression)]
    if candidates is not None:
        # ``rowid + 0``: as a bare rowid, SQLite would look each candidate up
        # with a MATCH of its own, re-reading every phrase's statistics per row.
        inner = select(fts.c.rowid).where(table.op("MATCH")(candidates)).correlate(None)
        conditions.append((fts.c.rowid + 0).in_(inner))
    depth = max(4 * limit, RANK_FIRST_DEPTH)
    matching = select(fts.c.rowid.label("key"), rank.label("rank")).select_from(fts)
    best = matching.where(*conditions).order_by(rank).limit(depth).subquery()
    rows = session.execute(_live_first(best, tenant, live, limit)).all()
    if len(rows) < limit and (session.scalar(select(func.count()).select_from(best)) or 0) == depth:
        tenant_matches = (
            matching.join(keys, keys.c.key == fts.c.rowid)
            .where(*conditions, keys.c.tenant_id == tenant)
            .subquery()
        )
        rows = session.execute(_live_first(tenant_matches, tenant, live, limit)).all()
    return [(row[0], float(row[1])) for row in rows]


def _ranked_postings(
    session: Session,
    postings: Sequence[Postings],
    tenant: str,
    live: ColumnElement[bool],
    limit: int,
) -> list[tuple[str, float]] | None:
    """The best ``limit`` live chunks of ``tenant`` by the cached postings, best first.

    The best rows of the whole index are checked for tenant, liveness and
    filters, ``limit + LIVE_SLACK`` at first and four times as many each
    round until ``limit`` pass; each round takes every row tied with its
    last, so the rows left unchecked all score less than those checked and
    the result is exact. None past ``MAX_POSTINGS_CHECKED`` rows (another
    tenant's, a selective filter): the FTS5 path then checks the tenant's.
    """
    totals = postings_scores(postings)
    checked: set[int] = set()
    passed: list[tuple[float, str]] = []
    count = limit + LIVE_SLACK
    while True:
        best, floor = best_keys(totals, count)
        fresh = [key for key in best.tolist() if key not in checked]
        if len(checked) + len(fresh) > MAX_POSTINGS_CHECKED:
            return None
        checked.update(fresh)
        for start in range(0, len(fresh), _BATCH):
            statement = (
                select(keys.c.key, Chunk.id)
                .select_from(keys)
                .join(Chunk, Chunk.id == keys.c.chunk_id)
                .where(
                    keys.c.key.in_(fresh[start : start + _BATCH]), keys.c.tenant_id == tenant, live
                )
            )
            passed.extend(
                (float(totals[key]), chunk_id) for key, chunk_id in session.execute(statement)
            )
        if len(passed) >= limit or floor == 0.0 or len(best) == np.count_nonzero(totals):
            break
        count *= 4
    passed.sort(key=lambda item: (-item[0], item[1]))
    return [(chunk_id, score) for score, chunk_id in passed[:limit]]


def _live_first(
    ranked: Subquery, tenant: str, live: ColumnElement[bool], limit: int
) -> Select[Any]:
    return (
        select(Chunk.id, ranked.c.rank)
        .select_from(ranked)
        .join(keys, keys.c.key == ranked.c.key)
        .join(Chunk, Chunk.id == keys.c.chunk_id)
        .where(keys.c.tenant_id == tenant, live)
        .order_by(ranked.c.rank, Chunk.id)
        .limit(limit)
    )


def _tsquery(terms: Sequence[str]) -> ColumnElement[object]:
    config: ColumnClause[Any] = literal_column(f"'{PG_CONFIG}'::regconfig")
    parts = [func.plainto_tsquery(config, term) for term in terms]
    return functools.reduce(lambda left, right: left.op("||")(right), parts)
