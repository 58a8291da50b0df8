"""``Retriever.search``: validate once, run the modes, fuse, and cite from the ledger.

Every mode returns ranked chunk IDs (:class:`Candidate`); each ranking is
then checked against the ledger (live chunks of the tenant that pass the
filters), de-duplicated by chunk text (one paragraph ingested under two
names shows once), and cut. Hybrid search fuses the checked rankings with
reciprocal rank fusion (:mod:`janus_stack.retrieve.fusion`).

Modes fetch deeper than ``k``: a single mode ``2k + 10`` (room for hits the
ledger rejects), each mode of a hybrid search ``max(3k, 30)`` so that a
chunk ranked moderately by several modes can surface.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from janus_stack.context import Janus
from janus_stack.errors import InvalidInputError
from janus_stack.ingest.entities import EntityExtractor
from janus_stack.retrieve import dense, keyword
from janus_stack.retrieve.chunks import (
    ChunkRow,
    check_known_tenant,
    load_chunks,
    query_terms,
    snippet,
)
from janus_stack.retrieve.filters import Filters
from janus_stack.retrieve.fusion import FusionWeights, fuse
from janus_stack.retrieve.graph import GraphSearch
from janus_stack.retrieve.linking import EntityLinker, LinkedEntity
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


class Retriever:
    """Searches one ``Janus`` memory.

    Args:
        janus: the open context; slots open on first use (keyword search
            needs only the ledger).
        extractor: the NER used to find entities in queries (graph and
            hybrid modes); by default spaCy's, loaded on first use.
        weights: hybrid fusion weights.
        hops: how far graph search expands from the query's entities (1-3).
    """

    def __init__(
        self,
        janus: Janus,
        *,
        extractor: EntityExtractor | None = None,
        weights: FusionWeights | None = None,
        hops: int = 2,
    ) -> None:
        if isinstance(hops, bool) or not isinstance(hops, int) or not 1 <= hops <= MAX_HOPS:
            raise InvalidInputError(f"search: hops must be an integer from 1 to {MAX_HOPS}")
        self.janus = janus
        self.weights = weights or FusionWeights()
        self.hops = hops
        self._extractor = extractor
        self._linker: EntityLinker | None = None
        self.last_entities: list[LinkedEntity] = []

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
        """The ``k`` best chunks for ``query``, best first.

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
        self.last_entities = []
        if chosen is Mode.HYBRID:
            return self._hybrid(text, name, checked, count)
        return self._single(chosen, text, name, checked, count)

    def _single(self, mode: Mode, query: str, tenant: str, filters: Filters, k: int) -> list[Hit]:
        found = self._run(mode, query, tenant, filters, min(2 * k + 10, MAX_DEPTH))
        rows, ranked = self._checked(tenant, found, filters)
        terms = query_terms(query)
        return [
            _hit(rows[c.chunk_id], terms, c.score, {mode.value: c.score}, {mode.value: i}, c.paths)
            for i, c in enumerate(ranked[:k], start=1)
        ]

    def _hybrid(self, query: str, tenant: str, filters: Filters, k: int) -> list[Hit]:
        depth = min(max(3 * k, HYBRID_DEPTH), MAX_DEPTH)
        rows: dict[str, ChunkRow] = {}
        per_mode: dict[Mode, list[Candidate]] = {}
        for mode in SINGLE_MODES:
            if self.weights.of(mode):
                found = self._run(mode, query, tenant, filters, depth)
                mode_rows, per_mode[mode] = self._checked(tenant, found, filters)
                rows.update(mode_rows)
        per_mode = _dedupe_across(per_mode, rows)
        rankings = {mode: [c.chunk_id for c in found] for mode, found in per_mode.items()}
        terms = query_terms(query)
        hits = []
        for chunk_id, value in fuse(rankings, self.weights, k):
            scores: dict[str, float] = {"fused": value}
            ranks: dict[str, int] = {}
            paths: tuple[GraphPath, ...] = ()
            for mode, candidates in per_mode.items():
                rank = rankings[mode].index(chunk_id) + 1 if chunk_id in rankings[mode] else 0
                if rank:
                    scores[mode.value] = candidates[rank - 1].score
                    ranks[mode.value] = rank
                    paths = paths or candidates[rank - 1].paths
            hits.append(_hit(rows[chunk_id], terms, value, scores, ranks, paths))
        return hits

    def _run(
        self, mode: Mode, query: str, tenant: str, filters: Filters, depth: int
    ) -> list[Candidate]:
        if mode is Mode.DENSE:
            return dense.search(
                self.janus.vectors, self.janus.embedder, tenant, query, filters, depth
            )
        if mode is Mode.KEYWORD:
            return keyword.search(self.janus.ledger, tenant, query, filters, depth)
        linked = self.linker.link(self.janus.ledger, tenant, query)
        self.last_entities = linked
        if not linked:
            return []
        search = GraphSearch(self.janus.graph, self.janus.ledger, tenant, filters)
        return search.run(linked, self.hops, max(depth * 4, 100))

    def _checked(
        self, tenant: str, found: Sequence[Candidate], filters: Filters
    ) -> tuple[dict[str, ChunkRow], list[Candidate]]:
        """Live, filter-passing candidates in order, one per chunk text."""
        rows = load_chunks(self.janus.ledger, tenant, [c.chunk_id for c in found], filters)
        seen: set[str] = set()
        kept: list[Candidate] = []
        for candidate in found:
            row = rows.get(candidate.chunk_id)
            if row is None or row.text_sha256 in seen:
                continue
            seen.add(row.text_sha256)
            kept.append(candidate)
        return rows, kept


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


def _hit(
    row: ChunkRow,
    terms: Sequence[str],
    score: float,
    scores: Mapping[str, float],
    ranks: Mapping[str, int],
    paths: tuple[GraphPath, ...] = (),
) -> Hit:
    return Hit(
        chunk_id=row.chunk_id,
        doc_id=row.doc_id,
        document_id=row.document_id,
        title=row.title,
        source=row.source,
        sub_id=row.sub_id,
        version=row.version,
        ordinal=row.ordinal,
        page=row.page,
        heading_path=row.heading_path,
        text=row.text,
        snippet=snippet(row.text, terms),
        score=score,
        scores=dict(scores),
        ranks=dict(ranks),
        paths=paths,
    )
