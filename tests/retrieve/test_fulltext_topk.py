"""Pruned BM25 top-k on SQLite FTS5: the same chunks, order and scores as ranking every match.

The reference ranks the full OR of the words over the tenant's chunks
with plain SQL; the pruned search must agree on every query, the first
time a word is seen (loose bounds), the second (tight bounds), and after
writes that change the index underneath the cached bounds; and so must
the ranking from cached postings, to the last bit.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import ledger_rows
import numpy as np
import pytest
from sqlalchemy import select, text

from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Chunk
from janus_stack.retrieve import Filters, fulltext_topk, keyword
from janus_stack.retrieve.chunks import query_terms
from janus_stack.retrieve.fulltext_topk import candidate_expression
from janus_stack.urls import SlotURL

TENANT = "acme"
WORDS = [f"w{i:02d}" for i in range(40)]
RARE = "zorbulite"


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(SlotURL.parse("relational", f"sqlite:///{tmp_path}/ledger.db")) as opened:
        migrations.upgrade(opened)
        yield opened


def add_chunks(ledger: Ledger, tenant: str, name: str, texts: list[str]) -> None:
    """One done document of ``tenant`` whose chunks are ``texts``."""
    ledger_rows.add_document(ledger, tenant, name, texts)


def zipf_texts(rng: random.Random, count: int) -> list[str]:
    weights = [1 / (rank + 1) for rank in range(len(WORDS))]
    return [" ".join(rng.choices(WORDS, weights, k=rng.randint(3, 40))) for _ in range(count)]


def reference(ledger: Ledger, tenant: str, query: str, limit: int) -> list[tuple[str, float]]:
    """Every match ranked, no pruning: the tenant's best ``limit`` by bm25, then chunk ID."""
    expression = " OR ".join(f'"{term}"' for term in query_terms(query))
    with ledger.session() as session:
        rows = session.execute(
            text(
                "SELECT k.chunk_id, -bm25(chunks_fts) AS score FROM chunks_fts "
                "JOIN chunks_fts_keys AS k ON k.key = chunks_fts.rowid "
                "WHERE chunks_fts MATCH :expression AND k.tenant_id = :tenant "
                "ORDER BY bm25(chunks_fts), k.chunk_id LIMIT :limit"
            ),
            {"expression": expression, "tenant": tenant, "limit": limit},
        ).all()
    return [(row[0], float(row[1])) for row in rows]


def pruned(ledger: Ledger, tenant: str, query: str, limit: int) -> list[tuple[str, float]]:
    found = keyword.search(ledger, tenant, query, Filters.parse({}), limit)
    return [(c.chunk_id, c.score) for c in found]


def assert_same(ledger: Ledger, query: str, limit: int, tenant: str = TENANT) -> None:
    got, want = pruned(ledger, tenant, query, limit), reference(ledger, tenant, query, limit)
    assert [chunk for chunk, _ in got] == [chunk for chunk, _ in want], query
    assert [score for _, score in got] == pytest.approx([score for _, score in want], rel=1e-9)


@pytest.mark.parametrize("first_sight", [0, fulltext_topk.FIRST_SIGHT_ROWS])
def test_pruned_ranking_equals_ranking_every_match(
    sqlite_ledger: Ledger, monkeypatch: pytest.MonkeyPatch, first_sight: int
) -> None:
    # 0: new words get loose bounds and the pruned FTS5 ranking; else cached postings.
    monkeypatch.setattr(fulltext_topk, "FIRST_SIGHT_ROWS", first_sight)
    rng = random.Random(7)
    add_chunks(sqlite_ledger, TENANT, "a", zipf_texts(rng, 300))
    add_chunks(sqlite_ledger, "other", "b", zipf_texts(rng, 200))
    queries = [" ".join(rng.sample(WORDS, rng.randint(1, 6))) for _ in range(40)]
    queries += [
        "w00 w01",
        "w00 w01 w02 w03",
        f"{RARE} w00",
        "w39 w38 w37 nothinglikethis",
        "___ w03",
    ]
    for limit in (3, 10, 30):
        for query in queries * 2:  # first sight: loose bounds; again: tight bounds
            assert_same(sqlite_ledger, query, limit)
    assert pruned(sqlite_ledger, TENANT, "nothinglikethis", 10) == []


def test_cached_bounds_follow_writes(
    sqlite_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fulltext_topk, "FIRST_SIGHT_ROWS", 0)
    rng = random.Random(11)
    add_chunks(sqlite_ledger, TENANT, "a", zipf_texts(rng, 200))
    query = "w05 w09 w14"
    for _ in range(2):
        assert_same(sqlite_ledger, query, 10)
    # A chunk made of the query's words outscores every bound cached before it.
    add_chunks(sqlite_ledger, TENANT, "b", ["w05 w09 w14 " * 20, f"{RARE} w05"])
    assert_same(sqlite_ledger, query, 10)
    best = pruned(sqlite_ledger, TENANT, query, 10)[0][0]
    with sqlite_ledger.session() as session:
        text_of_best = session.scalar(select(Chunk.text).where(Chunk.id == best))
        assert text_of_best is not None and text_of_best.startswith("w05 w09")
    with sqlite_ledger.session() as session:
        session.execute(text("DELETE FROM chunks WHERE text LIKE 'w05 w09 w14 w05%'"))
    assert_same(sqlite_ledger, query, 10)
    assert_same(sqlite_ledger, f"{RARE} w09", 10)


def test_candidates_are_the_minimal_term_sets_reaching_the_threshold() -> None:
    expression = candidate_expression(["a", "b", "c"], [3.0, 2.0, 1.0], 4.0)
    assert expression == '("a" AND "b") OR ("a" AND "c")'
    assert candidate_expression(["a", "b"], [3.0, 2.0], 2.5) == '("a")'
    assert candidate_expression(["a", "b"], [1.0, 1.0], 3.0) is None  # out of reach
    many = [f"t{i}" for i in range(20)]
    assert candidate_expression(many, [1.0] * 20, 10.0) is None  # too many sets to name


@pytest.mark.parametrize("seed", range(6))
def test_best_keys_are_the_top_count_with_their_ties(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.randint(1, 400)
    totals = np.zeros(size)
    for key in rng.sample(range(size), rng.randint(0, size)):
        totals[key] = rng.choice([0.5, 1.0, 1.5]) if seed % 2 else rng.random() + 0.01
    matching = sorted(np.flatnonzero(totals).tolist(), key=lambda key: -totals[key])
    for count in (1, 3, 40, size, size + 1):
        keys, floor = fulltext_topk.best_keys(totals, count)
        last = matching[min(count, len(matching)) - 1] if matching else None
        assert floor == (0.0 if last is None else float(totals[last]))
        assert keys.tolist() == [k for k in range(size) if totals[k] and totals[k] >= floor]


def cached_postings(ledger: Ledger) -> set[str]:
    known = ledger.derived.get(fulltext_topk._CACHE)
    return set(known.postings) if known is not None else set()


def test_cached_postings_score_exactly_as_bm25(sqlite_ledger: Ledger) -> None:
    rng = random.Random(5)
    add_chunks(sqlite_ledger, TENANT, "a", zipf_texts(rng, 300))
    queries = [" ".join(rng.sample(WORDS, rng.randint(1, 6))) for _ in range(30)]
    for query in queries * 2:  # the second sight ranks each word once and keeps it
        pruned(sqlite_ledger, TENANT, query, 10)
    assert set(WORDS) & cached_postings(sqlite_ledger)
    for query in queries:
        terms = query_terms(query)
        assert set(terms) <= cached_postings(sqlite_ledger), query
        for limit in (1, 10, 30):
            # Not approximately: the same additions in the same order as FTS5's bm25().
            assert pruned(sqlite_ledger, TENANT, query, limit) == reference(
                sqlite_ledger, TENANT, query, limit
            )


def test_postings_beyond_the_budget_are_dropped_and_ranked_again(
    sqlite_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(9)
    add_chunks(sqlite_ledger, TENANT, "a", zipf_texts(rng, 200))
    monkeypatch.setattr(fulltext_topk, "POSTINGS_BUDGET", 250)
    queries = ["w00 w01 w02", "w03 w04", "w05 w06 w07 w08"]
    for query in queries * 3:
        assert_same(sqlite_ledger, query, 10)
        known = sqlite_ledger.derived[fulltext_topk._CACHE]
        assert known.held == sum(len(p.keys) for p in known.postings.values()) <= 250


def test_another_tenants_better_rows_are_looked_past(sqlite_ledger: Ledger) -> None:
    # The other tenant holds the index's best rows for the query, hundreds of them:
    # the tenant's few must still come back, in order.
    add_chunks(sqlite_ledger, "other", "b", ["w01 w02 w01"] * 400)
    add_chunks(sqlite_ledger, TENANT, "a", ["w01 " + "w20 " * i for i in range(20)])
    for _ in range(3):
        for limit in (3, 10, 30):
            assert_same(sqlite_ledger, "w01 w02", limit)
    assert {"w01", "w02"} <= cached_postings(sqlite_ledger)
