"""``Retriever.search``: validate once, run the modes, fuse, and cite from the ledger.

Every mode returns ranked chunk IDs (:class:`Candidate`); each ranking is
then checked against the ledger (live chunks of the tenant that pass the
filters), de-duplicated by chunk text (one paragraph ingested under two
names shows once), and cut. Hybrid search runs its modes side by side,
checks all their chunks in one ledger read and fuses the rankings
(:mod:`janus_stack.retrieve.fusion`: weighted CombSUM by default); with a
``rerank`` weight the fused top candidates are then re-ordered by
late interaction (:mod:`janus_stack.retrieve.rerank`).

Modes fetch deeper than ``k``: a single mode ``2k + 10`` (room for hits the
ledger rejects), each mode of a hybrid search ``max(3k, 30)`` so that a
chunk ranked moderately by several modes can surface.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from janus_stack.context import Janus
from janus_stack.errors import InvalidInputError
from janus_stack.ingest.entities import EntityExtractor
from janus_stack.retrieve import dense, keyword
from janus_stack.retrieve.chunks import (
    ChunkRow,
    check_known_tenant,
    load_chunks,
    query_terms,
)
from janus_stack.retrieve.filters import Filters
from janus_stack.retrieve.fusion import FusionWeights, fuse
from janus_stack.retrieve.graph import GraphSearch
from janus_stack.retrieve.linking import EntityLinker, LinkedEntity
from janus_stack.retrieve.rerank import RERANK_DEPTH, LateInteraction, reorder
from janus_stack.retrieve.types import (
    DEFAULT_K,
    SINGLE_MODES,
    Candidate,
    GraphPath,
    Hit,
    Mode,
    check_k,
    check_mode,
    check_query,
)
from janus_stack.slots.graph import MAX_HOPS

HYBRID_DEPTH = 30
MAX_DEPTH = 300
GRAPH_HOPS = 2
HYBRID_HOPS = 0  # hybrid: mentions and the paths between the query's entities, no expansion
GRAPH_SLACK = 2  # hybrid: not all graph evidence is checked in the graph, fetch twice as deep


class Retriever:
    """Searches one ``Janus`` memory.

    Args:
        janus: the open context; slots open on first use (keyword search
            needs only the ledger).
        extractor: the NER used to find entities in queries (graph and
            hybrid modes); by default spaCy's, loaded on first use.
        weights: hybrid fusion weights; by default the defaults, with the
            ``rerank`` weight of the settings.
        hops: how far graph search expands from the query's entities (1-3);
            by default ``GRAPH_HOPS`` in graph mode and none in hybrid
            search, whose graph part is the chunks naming the query's
            entities and the multi-hop paths joining them: expanding around
            an entity costs more than the rest of the search together (a
            hub's neighbourhood) and adds chunks the other modes rank anyway.
    """

    def __init__(
        self,
        janus: Janus,
        *,
        extractor: EntityExtractor | None = None,
        weights: FusionWeights | None = None,
        hops: int | None = None,
    ) -> None:
        if hops is not None and (
            isinstance(hops, bool) or not isinstance(hops, int) or not 1 <= hops <= MAX_HOPS
        ):
            raise InvalidInputError(f"search: hops must be an integer from 1 to {MAX_HOPS}")
        self.janus = janus
        self.weights = weights or FusionWeights(rerank=janus.settings.rerank)
        self.hops = hops
        self._extractor = extractor
        self._linker: EntityLinker | None = None
        self.last_entities: list[LinkedEntity] = []
        # Threads start on first use and end when the retriever is collected: one per
        # mode, and one for graph search's read of the mentions beside the graph's.
        self._pool = ThreadPoolExecutor(len(SINGLE_MODES) + 1, thread_name_prefix="janus-retrieve")

    @property
    def linker(self) -> EntityLinker:
        if self._linker is None:
            if self._extractor is None:
                from janus_stack.ingest.spacy_extractor import (  # noqa: PLC0415 - heavy
                    SpacyEntityExtractor,
                )

                self._extractor = SpacyEntityExtractor(relations=False)
            self._linker = EntityLinker(self._extractor)
        return self._linker

    def search(
        self,
        query: str,
        *,
        mode: Mode | str = Mode.HYBRID,
        k: int = DEFAULT_K,
        tenant: str | None = None,
        filters: Filters | Mapping[str, object] | Iterable[str] | None = None,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first; its entities go to ``last_entities``.

        Raises what :meth:`search_linked` raises.
        """
        self.last_entities = []
        hits, self.last_entities = self.search_linked(
            query, mode=mode, k=k, tenant=tenant, filters=filters
        )
        return hits

    def search_linked(
        self,
        query: str,
        *,
        mode: Mode | str = Mode.HYBRID,
        k: int = DEFAULT_K,
        tenant: str | None = None,
        filters: Filters | Mapping[str, object] | Iterable[str] | None = None,
    ) -> tuple[list[Hit], list[LinkedEntity]]:
        """``search`` and the query's linked entities, returned rather than kept.

        A retriever shared by threads (the server's) uses this: ``last_entities``
        would belong to whichever search finished last.

        Raises:
            InvalidInputError: an empty or over-long query, an unknown mode or
                filter field, ``k`` out of range, an invalid tenant name.
            NotFoundError: the tenant does not exist.
        """
        text = check_query(query)
        chosen = check_mode(mode)
        count = check_k(k)
        checked = filters if isinstance(filters, Filters) else Filters.parse(filters)
        name = check_known_tenant(
            self.janus.ledger, self.janus.settings.tenant if tenant is None else tenant
        )
        linked: list[LinkedEntity] = []
        if chosen is Mode.HYBRID:
            return self._hybrid(text, name, checked, count, linked), linked
        return self._single(chosen, text, name, checked, count, linked), linked

    def _single(
        self,
        mode: Mode,
        query: str,
        tenant: str,
        filters: Filters,
        k: int,
        linked: list[LinkedEntity],
    ) -> list[Hit]:
        found = self._run(mode, query, tenant, filters, min(2 * k + 10, MAX_DEPTH), linked)
        rows, ranked = self._checked(tenant, found, filters)
        terms = query_terms(query)
        return [
            rows[c.chunk_id].as_hit(terms, c.score, {mode.value: c.score}, {mode.value: i}, c.paths)
            for i, c in enumerate(ranked[:k], start=1)
        ]

    def _hybrid(
        self, query: str, tenant: str, filters: Filters, k: int, linked: list[LinkedEntity]
    ) -> list[Hit]:
        found = self._gather(query, tenant, filters, k, linked, self.weights)
        return self.fuse_hits(found, k)

    def candidates(
        self,
        query: str,
        *,
        k: int = DEFAULT_K,
        tenant: str | None = None,
        filters: Filters | Mapping[str, object] | Iterable[str] | None = None,
    ) -> HybridCandidates:
        """What every mode finds for a hybrid search of ``k`` hits, before fusion.

        With :meth:`fuse_hits` this is ``search(mode="hybrid")`` in two steps,
        so that fusion settings can be compared on the same candidates
        (``benchmarks/fusion.py``). All three modes run, whatever the weights.
        """
        text, count = check_query(query), check_k(k)
        checked = filters if isinstance(filters, Filters) else Filters.parse(filters)
        name = check_known_tenant(
            self.janus.ledger, self.janus.settings.tenant if tenant is None else tenant
        )
        return self._gather(text, name, checked, count, [], FusionWeights(1.0, 1.0, 1.0))

    def fuse_hits(
        self, found: HybridCandidates, k: int, weights: FusionWeights | None = None
    ) -> list[Hit]:
        """The fused top ``k`` of ``found`` as hits (with this retriever's weights by default).

        With a ``rerank`` weight, the fused top ``max(k, RERANK_DEPTH)`` are
        re-ordered first; a hit's ``score`` is then the blend, and its
        ``scores`` hold ``fused`` and ``rerank`` (the MaxSim) beside each mode's.
        """
        chosen = weights or self.weights
        per_mode = {mode: c for mode, c in found.per_mode.items() if chosen.of(mode)}
        where = {
            mode: {c.chunk_id: rank for rank, c in enumerate(candidates, start=1)}
            for mode, candidates in per_mode.items()
        }
        terms = query_terms(found.query)
        fused = fuse(per_mode, chosen, max(k, RERANK_DEPTH) if chosen.rerank else k, found.depth)
        final, late = fused, {}
        if chosen.rerank and fused:
            with self.janus.telemetry.span("retrieve.rerank", candidates=len(fused)):
                similarities = LateInteraction(self.janus.embedder).similarities(
                    found.query, [found.rows[chunk_id].text for chunk_id, _ in fused]
                )
            late = dict(zip([chunk_id for chunk_id, _ in fused], similarities, strict=True))
            final = reorder(fused, similarities, chosen, per_mode, k)
        first = dict(fused)
        hits = []
        for chunk_id, value in final:
            scores: dict[str, float] = {"fused": first[chunk_id]}
            if late:
                scores["rerank"] = late[chunk_id]
            ranks: dict[str, int] = {}
            paths: tuple[GraphPath, ...] = ()
            for mode, candidates in per_mode.items():
                rank = where[mode].get(chunk_id, 0)
                if rank:
                    scores[mode.value] = candidates[rank - 1].score
                    ranks[mode.value] = rank
                    paths = paths or candidates[rank - 1].paths
            hits.append(found.rows[chunk_id].as_hit(terms, value, scores, ranks, paths))
        return hits

    def _gather(
        self,
        query: str,
        tenant: str,
        filters: Filters,
        k: int,
        linked: list[LinkedEntity],
        weights: FusionWeights,
    ) -> HybridCandidates:
        """Run the weighted modes side by side, then check all their chunks in one read.

        The modes wait on different engines (the embedding model and the
        vector index, full-text search in the ledger, spaCy and the graph),
        most of which release the GIL, so running them in threads costs
        about as long as the slowest one instead of the sum.
        """
        depth = min(max(3 * k, HYBRID_DEPTH), MAX_DEPTH)
        modes = [mode for mode in SINGLE_MODES if weights.of(mode)]
        jobs = {
            mode: self._pool.submit(
                contextvars.copy_context().run,
                self._run,
                mode,
                query,
                tenant,
                filters,
                depth,
                linked,
                True,
            )
            for mode in modes
        }
        raw = {mode: job.result() for mode, job in jobs.items()}
        wanted = [c.chunk_id for found in raw.values() for c in found]
        rows = load_chunks(self.janus.ledger, tenant, wanted, filters)
        per_mode = {mode: _live(found, rows)[:depth] for mode, found in raw.items()}
        return HybridCandidates(query, rows, _dedupe_across(per_mode, rows), depth)

    def _run(
        self,
        mode: Mode,
        query: str,
        tenant: str,
        filters: Filters,
        depth: int,
        linked: list[LinkedEntity],
        hybrid: bool = False,
    ) -> list[Candidate]:
        """One mode's candidates, in a span of its own (one per mode, not per store call)."""
        with self.janus.telemetry.span(f"retrieve.{mode.value}", depth=depth) as span:
            found = self._run_mode(mode, query, tenant, filters, depth, linked, hybrid)
            span.set("janus.candidates", len(found))
            return found

    def _run_mode(
        self,
        mode: Mode,
        query: str,
        tenant: str,
        filters: Filters,
        depth: int,
        linked: list[LinkedEntity],
        hybrid: bool,
    ) -> list[Candidate]:
        """One mode's candidates; graph mode puts the query's entities into ``linked``."""
        if mode is Mode.DENSE:
            return dense.search(
                self.janus.vectors, self.janus.embedder, tenant, query, filters, depth
            )
        if mode is Mode.KEYWORD:
            return keyword.search(self.janus.ledger, tenant, query, filters, depth)
        linked[:] = self.linker.link(self.janus.ledger, tenant, query)
        if not linked:
            return []
        search = GraphSearch(self.janus.graph, self.janus.ledger, tenant, filters, self._pool)
        if hybrid:
            hops, limit = self.hops or HYBRID_HOPS, depth * GRAPH_SLACK
        else:
            hops, limit = self.hops or GRAPH_HOPS, max(depth * 4, 100)
        return search.run(list(linked), hops, limit)

    def _checked(
        self, tenant: str, found: Sequence[Candidate], filters: Filters
    ) -> tuple[dict[str, ChunkRow], list[Candidate]]:
        """Live, filter-passing candidates in order, one per chunk text."""
        rows = load_chunks(self.janus.ledger, tenant, [c.chunk_id for c in found], filters)
        return rows, _live(found, rows)


@dataclass(frozen=True)
class HybridCandidates:
    """Each mode's live candidates for one query (one per chunk text), before fusion."""

    query: str
    rows: Mapping[str, ChunkRow]
    per_mode: Mapping[Mode, list[Candidate]]
    depth: int  # candidates asked of each mode


def _live(found: Sequence[Candidate], rows: Mapping[str, ChunkRow]) -> list[Candidate]:
    """The candidates whose chunk is among ``rows``, in order, the first of each text."""
    seen: set[str] = set()
    kept: list[Candidate] = []
    for candidate in found:
        row = rows.get(candidate.chunk_id)
        if row is None or row.text_sha256 in seen:
            continue
        seen.add(row.text_sha256)
        kept.append(candidate)
    return kept


def _dedupe_across(
    per_mode: dict[Mode, list[Candidate]], rows: Mapping[str, ChunkRow]
) -> dict[Mode, list[Candidate]]:
    """Map chunks of equal text to the first such chunk any mode found."""
    canonical: dict[str, str] = {}
    result: dict[Mode, list[Candidate]] = {}
    for mode, candidates in per_mode.items():
        kept: list[Candidate] = []
        for candidate in candidates:
            sha = rows[candidate.chunk_id].text_sha256
            first = canonical.setdefault(sha, candidate.chunk_id)
            if first == candidate.chunk_id:
                kept.append(candidate)
            else:
                kept.append(Candidate(first, candidate.score, candidate.paths))
        result[mode] = kept
    return result
