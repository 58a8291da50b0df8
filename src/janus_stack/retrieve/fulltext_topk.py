"""Exact BM25 top-k on SQLite FTS5 without ranking every match (MaxScore-style pruning).

FTS5 evaluates a MATCH cheaply (≈5 ms for 40k matches at 100k chunks) but
``bm25()`` costs about 1.5 µs per row, so ranking an OR of common words
ranked every one of its ~40k matches (≈60 ms). BM25 is a sum over the
query's phrases, and a row's score depends only on the phrase list, not on
the boolean operators joining them; so:

1. every phrase has a largest possible contribution ``U`` — its best
   single-phrase ``bm25`` over the whole table, or ``idf·(k1+1)`` until the
   term has been asked for twice; cached until the index changes;
2. a row holding only the phrases of a set ``S`` scores at most ``ΣU(S)``;
   once some ``k`` rows are known to score at least ``θ``, only rows holding
   a set of phrases with ``ΣU ≥ θ`` can still make the top ``k``, and the
   minimal such sets, AND-ed and OR-ed, are an FTS5 expression selecting
   exactly those rows (:func:`candidate_expression`);
3. ranking the full OR restricted to those candidates gives the exact top
   ``k`` (scores identical to ranking everything; see ``keyword``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

MAX_CLAUSES = 64
# Float sums of the same contributions in another order differ in the last bits.
SLACK = 1e-9
# The constants of FTS5's built-in bm25() (fts5_aux.c): k1, and the floor of idf.
_FTS5_K1 = 1.2
_FTS5_MIN_IDF = 1e-6
_CACHE = "fts5.term_bounds"
# FTS5's shadow rows that change on every write to the index: the averages
# record (row and token counts) and the structure record (segments, cookie).
_GENERATION = text("SELECT id, block FROM chunks_fts_data WHERE id IN (1, 10) ORDER BY id")
_SCHEMA = text("PRAGMA schema_version")
_ROWS = text("SELECT count(*) FROM chunks_fts_docsize")
_HOLDING = text("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH :phrase")
_BEST = text(
    "SELECT min(score) FROM (SELECT bm25(chunks_fts) AS score FROM chunks_fts "
    "WHERE chunks_fts MATCH :phrase LIMIT -1)"  # LIMIT keeps bm25 in its own query
)


def quoted(term: str) -> str:
    """``term`` as an FTS5 string: a phrase of its tokens, never syntax."""
    return '"' + term.replace('"', '""') + '"'


@dataclass
class _Bounds:
    """What the ledger's connections learnt of the index as of one generation."""

    generation: tuple[Any, ...]
    rows: int | None = None
    loose: dict[str, float] = field(default_factory=dict)
    tight: dict[str, float] = field(default_factory=dict)


def term_bounds(
    derived: dict[str, Any], connection: Connection, terms: Sequence[str]
) -> list[float]:
    """An upper bound of each term's ``bm25`` contribution to any row (0: no row has it).

    The tight bound is the term's best single-phrase ``bm25`` over the table;
    scanning a common term for it costs as much as ranking it, so a term
    seen for the first time gets the loose bound ``idf·(k1+1)`` (a count
    of its rows), and the tight one when it comes back. Both are kept in
    ``derived`` (the ledger's, shared by its connections: a pool hands a
    query any of them) and dropped as soon as FTS5's averages or structure
    record differs from the one this transaction sees, i.e. after any write.
    """
    generation = (
        connection.execute(_SCHEMA).scalar_one(),  # a re-created index starts its records anew
        *(tuple(row) for row in connection.execute(_GENERATION)),
    )
    known = derived.get(_CACHE)
    if not isinstance(known, _Bounds) or known.generation != generation:
        known = _Bounds(generation)
        derived[_CACHE] = known
    for term in terms:
        if term in known.tight:
            continue
        if term in known.loose:
            best = connection.execute(_BEST, {"phrase": quoted(term)}).scalar()
            known.tight[term] = -float(best) if best is not None else 0.0  # bm25: lower wins
            continue
        if known.rows is None:
            known.rows = int(connection.execute(_ROWS).scalar_one())
        holding = int(connection.execute(_HOLDING, {"phrase": quoted(term)}).scalar_one())
        known.loose[term] = _loose_bound(known.rows, holding)
    return [known.tight.get(term, known.loose.get(term, 0.0)) for term in terms]


def _loose_bound(rows: int, holding: int) -> float:
    """FTS5's ``bm25`` idf times the limit of its tf part, ``k1 + 1``."""
    if not holding:
        return 0.0
    idf = math.log((rows - holding + 0.5) / (holding + 0.5))
    return max(idf, _FTS5_MIN_IDF) * (_FTS5_K1 + 1)


def all_of(terms: Sequence[str]) -> str:
    """An FTS5 expression AND-ing ``terms``."""
    return " AND ".join(quoted(term) for term in terms)


def any_of(terms: Sequence[str]) -> str:
    """An FTS5 expression OR-ing ``terms``."""
    return " OR ".join(quoted(term) for term in terms)


def best_missing_one(bounds: Sequence[float]) -> float:
    """The most a row lacking at least one of the terms can score."""
    return sum(bounds) - min(bounds) if bounds else 0.0


def candidate_expression(
    terms: Sequence[str], bounds: Sequence[float], threshold: float
) -> str | None:
    """An FTS5 expression matching every row that might score ``threshold`` or more.

    The OR of the minimal term sets whose bounds reach the threshold; None
    when there are more than ``MAX_CLAUSES`` of them (many terms of similar
    weight), where ranking every match is the cheaper way.
    """
    order = sorted(range(len(terms)), key=lambda i: -bounds[i])
    rest = [0.0] * (len(order) + 1)
    for position in range(len(order) - 1, -1, -1):
        rest[position] = rest[position + 1] + bounds[order[position]]
    floor = threshold * (1 - SLACK)
    clauses: list[list[int]] = []
    stack: list[tuple[int, list[int], float]] = [(0, [], 0.0)]
    while stack:
        position, chosen, total = stack.pop()
        if total >= floor:
            clauses.append(chosen)  # adding terms by falling weight: minimal already
            if len(clauses) > MAX_CLAUSES:
                return None
            continue
        if position == len(order) or total + rest[position] < floor:
            continue
        stack.append((position + 1, chosen, total))
        term = order[position]
        stack.append((position + 1, [*chosen, term], total + bounds[term]))
    if not clauses:
        return None
    return " OR ".join("(" + all_of([terms[i] for i in sorted(c)]) + ")" for c in clauses)
