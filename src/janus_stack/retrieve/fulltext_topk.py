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

Computing a tight bound ranks every row holding the phrase on its own, and
each of those single-phrase scores is exactly that phrase's term of the
sum ``bm25`` computes for any query containing it (the idf, the row length
and the average length do not depend on the other phrases). So that
ranking is kept (:class:`Postings`: keys and scores, up to
``POSTINGS_BUDGET`` entries for all phrases, least recently used dropped
first), and a query whose phrases all have postings is scored without
FTS5: adding the postings in the query's phrase order, starting from 0.0,
performs the same floating-point additions as ``bm25`` does, so the
scores are bit-identical (:func:`postings_scores`). With 100k chunks this
takes a few milliseconds where the pruned FTS5 queries took 50-150.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, text

MAX_CLAUSES = 64
# Cached (key, score) entries over all phrases: 16 bytes each, 64 MB in all.
POSTINGS_BUDGET = 4_000_000
# Rows a query's new terms may hold and still be ranked at once (≈2 µs a row).
FIRST_SIGHT_ROWS = 30_000
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
_SCORES = "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ?"


def quoted(term: str) -> str:
    """``term`` as an FTS5 string: a phrase of its tokens, never syntax."""
    return '"' + term.replace('"', '""') + '"'


@dataclass(frozen=True)
class Postings:
    """Every row holding one phrase: FTS5 keys, ascending, and the phrase's ``bm25`` term."""

    keys: NDArray[np.int64]
    scores: NDArray[np.float64]


@dataclass
class _Bounds:
    """What the ledger's connections learnt of the index as of one generation."""

    generation: tuple[Any, ...]
    rows: int | None = None
    loose: dict[str, float] = field(default_factory=dict)
    tight: dict[str, float] = field(default_factory=dict)
    postings: OrderedDict[str, Postings] = field(default_factory=OrderedDict)
    held: int = 0  # entries in ``postings``
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keep(self, term: str, found: Postings) -> None:
        """Cache ``found`` for ``term``, dropping the least recently used beyond the budget."""
        with self.lock:
            if term in self.postings or len(found.keys) > POSTINGS_BUDGET:
                return
            self.postings[term] = found
            self.held += len(found.keys)
            while self.held > POSTINGS_BUDGET:
                _, dropped = self.postings.popitem(last=False)
                self.held -= len(dropped.keys)

    def recall(self, terms: Sequence[str]) -> list[Postings] | None:
        """The postings of every one of ``terms``, or None when any is not cached."""
        with self.lock:
            if any(term not in self.postings for term in terms):
                return None
            for term in terms:
                self.postings.move_to_end(term)
            return [self.postings[term] for term in terms]


def term_bounds(
    derived: dict[str, Any], connection: Connection, terms: Sequence[str]
) -> tuple[list[float], list[Postings] | None]:
    """An upper bound of each term's ``bm25`` contribution to any row (0: no row has it).

    The tight bound is the term's best single-phrase ``bm25`` over the table;
    scanning a common term for it costs as much as ranking it, so a term
    seen for the first time gets the loose bound ``idf·(k1+1)`` (a count
    of its rows), and the tight one, with its postings, when it comes back.
    Terms new to a query are ranked at once, though, when together they
    hold at most ``FIRST_SIGHT_ROWS`` rows: then every phrase has postings
    and the query needs no FTS5 ranking at all, which costs more than that.
    All are kept in ``derived`` (the ledger's, shared by its connections: a
    pool hands a query any of them) and dropped as soon as FTS5's averages
    or structure record differs from the one this transaction sees, i.e.
    after any write.

    Returns:
        the bounds, and the postings of the terms with a bound above 0 when
        every one of them is cached (else None).
    """
    generation = (
        connection.execute(_SCHEMA).scalar_one(),  # a re-created index starts its records anew
        *(tuple(row) for row in connection.execute(_GENERATION)),
    )
    known = derived.get(_CACHE)
    if not isinstance(known, _Bounds) or known.generation != generation:
        known = _Bounds(generation)
        derived[_CACHE] = known
    wanted: list[str] = []  # seen before: rank now
    fresh: dict[str, int] = {}  # seen for the first time: rows holding each
    for term in terms:
        if term in known.tight:
            if known.tight[term] > 0 and term not in known.postings:  # evicted
                wanted.append(term)
        elif term in known.loose:
            wanted.append(term)
        elif term not in fresh:
            if known.rows is None:
                known.rows = int(connection.execute(_ROWS).scalar_one())
            holding = int(connection.execute(_HOLDING, {"phrase": quoted(term)}).scalar_one())
            known.loose[term] = _loose_bound(known.rows, holding)
            if holding:
                fresh[term] = holding
    if sum(fresh.values()) <= FIRST_SIGHT_ROWS:
        wanted.extend(fresh)
    for term in wanted:
        found = _postings(connection, term)
        known.tight[term] = float(found.scores.max()) if len(found.keys) else 0.0
        if len(found.keys):
            known.keep(term, found)
    bounds = [known.tight.get(term, known.loose.get(term, 0.0)) for term in terms]
    return bounds, known.recall([t for t, bound in zip(terms, bounds, strict=True) if bound > 0])


def _postings(connection: Connection, term: str) -> Postings:
    """Rank every row holding ``term`` on its own (the raw cursor: tens of thousands of rows)."""
    cursor = connection.connection.cursor()
    try:
        rows = cursor.execute(_SCORES, (quoted(term),)).fetchall()
    finally:
        cursor.close()
    if not rows:
        return Postings(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
    table = np.array(rows, dtype=np.float64)  # keys are far below 2**53: exact
    order = np.argsort(table[:, 0], kind="stable")
    return Postings(table[order, 0].astype(np.int64), -table[order, 1])  # bm25: lower wins


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


def postings_scores(postings: Sequence[Postings]) -> NDArray[np.float64]:
    """The ``bm25`` score over all the phrases of every row, indexed by key (0: no match).

    ``postings`` must be in the order of the query's phrases: each row's
    score is then summed exactly as FTS5's ``bm25`` sums it (see the module
    docstring).
    """
    size = 1 + max((int(p.keys[-1]) for p in postings if len(p.keys)), default=-1)
    totals = np.zeros(size, dtype=np.float64)
    for found in postings:
        totals[found.keys] += found.scores  # keys are unique within one phrase
    return totals


def best_keys(totals: NDArray[np.float64], count: int) -> tuple[NDArray[np.int64], float]:
    """The keys of the ``count`` best scores above 0, with every key tied with the last.

    Returns the keys and the least score among them (0.0 when none): any
    other key scores less, so checking these first never misses a better row.
    Only the matching rows are partitioned: over the whole table, the
    non-matching rows' zeros and the few distinct scores of short phrases
    are ties that cost selection eight times as long (8 ms at 100k chunks).
    """
    keys = np.flatnonzero(totals).astype(np.int64)
    if count < len(keys):
        scores = totals[keys]
        floor = float(np.partition(scores, len(keys) - count)[len(keys) - count])
        return keys[scores >= floor], floor
    return keys, float(totals[keys].min()) if len(keys) else 0.0
