"""Graph search: from the entities a query names to the chunks that support them.

Evidence, weighed per chunk and summed (each entity weighs its link score
divided by how common it is, ``1 / (1 + log10(1 + chunks mentioning it))``,
so "Frank Borman" counts for more than "United States"):

* **between** — a relation on a shortest path (at most ``PATH_HOPS``)
  joining two entities of the query: ``PATH_WEIGHT * mean weight / hops``
  for every chunk supporting it. This is the multi-hop evidence: the
  chunks of a path may come from documents that name only one end each.
* **mention** — the chunk mentions an entity of the query (ledger mention
  rows: the chunks naming the most of the query's entities, by weight,
  metadata filters applied; as many as the search asks for, at most
  ``MENTION_LIMIT``): the entity's weight, plus a little per repeated mention.
* **neighbour** — (``hops`` ≥ 1) the chunk supports a relation within ``hops`` of an
  entity of the query (``GraphStore.neighbourhood``; the ``NEIGHBOUR_RELATIONS``
  nearest and best supported): ``NEIGHBOUR_WEIGHT * weight * 0.5 ** (hop - 1)``.

Each hit keeps its strongest walks (entity → relation → entity, with the
chunks supporting every relation) as the explanation of its rank.
"""

from __future__ import annotations

import contextvars
import itertools
import math
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from janus_stack.ledger.database import Ledger
from janus_stack.retrieve.filters import Filters
from janus_stack.retrieve.graph_ledger import best_mentions
from janus_stack.retrieve.linking import LinkedEntity
from janus_stack.retrieve.types import Candidate, EntityRef, GraphPath, RelationRef
from janus_stack.slots.graph import Entity, GraphStore, Relation, Subgraph

PATH_WEIGHT = 2.0
NEIGHBOUR_WEIGHT = 0.5
REPEAT_WEIGHT = 0.1
PATH_HOPS = 4
PATHS_PER_PAIR = 3
MAX_PAIRS = 10
MENTION_LIMIT = 200
NEIGHBOURHOOD_LIMIT = 200
NEIGHBOUR_RELATIONS = 300
CHUNKS_PER_RELATION = 50
PATHS_PER_HIT = 3
_KIND_ORDER = {"between": 0, "neighbour": 1, "mention": 2}


@dataclass
class _Evidence:
    score: float = 0.0
    paths: list[tuple[float, GraphPath]] = field(default_factory=list)

    def add(self, weight: float, path: GraphPath) -> None:
        self.score += weight
        self.paths.append((weight, path))


class GraphSearch:
    """One graph search over a tenant's graph and ledger (see the module docstring)."""

    def __init__(
        self,
        graph: GraphStore,
        ledger: Ledger,
        tenant: str,
        filters: Filters,
        pool: Executor | None = None,
    ) -> None:
        self.graph = graph
        self.ledger = ledger
        self.tenant = tenant
        self.filters = filters
        self.pool = pool
        self.evidence: dict[str, _Evidence] = {}

    def run(self, linked: Sequence[LinkedEntity], hops: int, limit: int) -> list[Candidate]:
        """The ``limit`` best-supported chunks, best first.

        With a ``pool``, the ledger's mentions are read while the graph is
        asked for the entities and the paths between them (both wait on
        their engines, not on Python), for the weights of all of ``linked``:
        the graph holds them all unless its projection lags behind the
        ledger, and then the mentions are read again for those it holds.
        The evidence is added in the same order either way.
        """
        weight_of = {e.id: _weight(e) for e in linked}
        # A mention ranked past ``limit`` can only enter the result on evidence of another
        # kind, which it is given anyway; reading it costs a liveness check and a walk.
        mentions = min(MENTION_LIMIT, limit)
        ahead = (
            self.pool.submit(
                contextvars.copy_context().run,
                best_mentions,
                self.ledger,
                self.tenant,
                self.filters,
                weight_of,
                mentions,
            )
            if self.pool is not None and linked
            else None
        )
        stored = {e.id: e for e in self.graph.get_entities(self.tenant, list(weight_of))}
        seeds = [entity for entity in linked if entity.id in stored]
        if not seeds:
            return []
        weight = {s.id: weight_of[s.id] for s in seeds}
        self._between(seeds, weight)
        # Not started yet (a pool busy with other searches): read here rather than
        # wait on a queue this thread may itself be holding up.
        if ahead is not None and not ahead.cancel() and len(weight) == len(weight_of):
            found = ahead.result()
        else:
            found = best_mentions(self.ledger, self.tenant, self.filters, weight, mentions)
        self._mentions({s.id: _ref(stored[s.id]) for s in seeds}, weight, found)
        self._neighbours(seeds, weight, hops)
        ranked = sorted(self.evidence.items(), key=lambda item: (-item[1].score, item[0]))
        return [
            Candidate(
                chunk_id=chunk_id,
                score=round(evidence.score, 6),
                paths=_strongest(evidence.paths),
            )
            for chunk_id, evidence in ranked[:limit]
        ]

    def _support(self, chunk_ids: Sequence[str], weight: float, path: GraphPath) -> None:
        for chunk_id in list(chunk_ids)[:CHUNKS_PER_RELATION]:
            self.evidence.setdefault(chunk_id, _Evidence()).add(weight, path)

    def _between(self, seeds: Sequence[LinkedEntity], weight: dict[str, float]) -> None:
        # Entities linked from one span ("Apollo 8" the ORG and the PRODUCT) are
        # alternatives for one name, not two things the query connects.
        pairs = [(a, b) for a, b in itertools.combinations(seeds, 2) if a.surface != b.surface]
        pairs = pairs[:MAX_PAIRS]
        for a, b in pairs:
            paths = self.graph.shortest_paths(
                self.tenant, a.id, b.id, max_hops=PATH_HOPS, limit=PATHS_PER_PAIR
            )
            for path in paths:
                if not path.relations:
                    continue
                walk = GraphPath(
                    kind="between",
                    entities=tuple(_ref(e) for e in path.entities),
                    relations=tuple(_relation_ref(r) for r in path.relations),
                )
                value = PATH_WEIGHT * (weight[a.id] + weight[b.id]) / 2.0 / path.hops
                for relation in path.relations:
                    self._support(relation.chunk_ids, value, walk)

    def _mentions(
        self,
        refs: dict[str, EntityRef],
        weight: dict[str, float],
        found: Sequence[tuple[str, str, int]],
    ) -> None:
        for chunk_id, entity_id, count in found:
            value = weight[entity_id] * (1.0 + REPEAT_WEIGHT * math.log(max(1, count)))
            self.evidence.setdefault(chunk_id, _Evidence()).add(
                value, _mention_walk(refs[entity_id])
            )

    def _neighbours(
        self, seeds: Sequence[LinkedEntity], weight: dict[str, float], hops: int
    ) -> None:
        if hops == 0:
            return
        sub = self.graph.neighbourhood(
            self.tenant, [s.id for s in seeds], hops=hops, limit=NEIGHBOURHOOD_LIMIT
        )
        distance, parent, origin = _bfs(sub, [s.id for s in seeds])
        entities = {entity.id: entity for entity in sub.entities}
        reachable: list[tuple[int, str, str, Relation]] = []
        for relation in sub.relations:
            ends = (relation.source_id, relation.target_id)
            if any(end not in distance for end in ends):
                continue
            near, far = sorted(ends, key=lambda end: (distance[end], end))
            if distance[near] + 1 <= hops:
                reachable.append((distance[near] + 1, near, far, relation))
        # Around a hub the neighbourhood holds thousands of relations whose far,
        # thinly supported ones barely move a chunk's score but cost a walk each.
        reachable.sort(key=lambda item: (item[0], -len(item[3].chunk_ids), item[3].id))
        for hop, near, far, relation in reachable[:NEIGHBOUR_RELATIONS]:
            chain = _chain(near, parent)
            walk = GraphPath(
                kind="neighbour",
                entities=(*(_ref(entities[e]) for e in chain), _ref(entities[far])),
                relations=(
                    *(_relation_ref(r) for r in _chain_relations(near, parent)),
                    _relation_ref(relation),
                ),
            )
            value = NEIGHBOUR_WEIGHT * weight[origin[near]] * 0.5 ** (hop - 1)
            self._support(relation.chunk_ids, value, walk)


def _weight(entity: LinkedEntity) -> float:
    """The link score over how common the entity is (``mentions``: chunks naming it)."""
    return entity.score / (1.0 + math.log10(1.0 + entity.mentions))


def _mention_walk(ref: EntityRef) -> GraphPath:
    return GraphPath(kind="mention", entities=(ref,))


def _bfs(
    sub: Subgraph, seeds: Sequence[str]
) -> tuple[dict[str, int], dict[str, tuple[str, Relation]], dict[str, str]]:
    """Hop distance, BFS parent (entity, relation) and originating seed of each entity."""
    adjacent: dict[str, list[tuple[str, Relation]]] = {}
    for relation in sorted(sub.relations, key=lambda r: r.id):
        adjacent.setdefault(relation.source_id, []).append((relation.target_id, relation))
        adjacent.setdefault(relation.target_id, []).append((relation.source_id, relation))
    distance = {seed: 0 for seed in seeds}
    origin = {seed: seed for seed in seeds}
    parent: dict[str, tuple[str, Relation]] = {}
    queue = deque(seeds)
    while queue:
        node = queue.popleft()
        for other, relation in adjacent.get(node, ()):
            if other not in distance:
                distance[other] = distance[node] + 1
                origin[other] = origin[node]
                parent[other] = (node, relation)
                queue.append(other)
    return distance, parent, origin


def _chain(node: str, parent: dict[str, tuple[str, Relation]]) -> list[str]:
    """Entity IDs from the seed to ``node``."""
    chain = [node]
    while chain[-1] in parent:
        chain.append(parent[chain[-1]][0])
    return chain[::-1]


def _chain_relations(node: str, parent: dict[str, tuple[str, Relation]]) -> list[Relation]:
    relations: list[Relation] = []
    while node in parent:
        node, relation = parent[node]
        relations.append(relation)
    return relations[::-1]


def _strongest(paths: list[tuple[float, GraphPath]]) -> tuple[GraphPath, ...]:
    best: dict[GraphPath, float] = {}
    for value, path in paths:
        best[path] = max(value, best.get(path, 0.0))
    # Walks between two query entities explain most, then expansions, then bare mentions.
    ranked = sorted(best.items(), key=lambda item: (_KIND_ORDER[item[0].kind], -item[1]))
    return tuple(path for path, _ in ranked[:PATHS_PER_HIT])


def _ref(entity: Entity | LinkedEntity) -> EntityRef:
    return EntityRef(id=entity.id, name=entity.name, type=entity.type)


def _relation_ref(relation: Relation) -> RelationRef:
    return RelationRef(
        id=relation.id,
        type=relation.type,
        source_id=relation.source_id,
        target_id=relation.target_id,
        chunk_ids=tuple(relation.chunk_ids),
    )
