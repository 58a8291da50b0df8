"""Retrieval over the memory: dense, keyword, graph and hybrid search.

    from janus_stack.retrieve import Retriever

    hits = Retriever(janus).search("who flew Apollo 8?", mode="hybrid", k=5)

One module per mode (``dense``, ``keyword``, ``graph``), ``fusion`` for
combining their rankings (weighted CombSUM or reciprocal rank fusion),
``linking`` for the entities a query names, ``chunks`` for the ledger side
every mode shares, ``fulltext`` for the keyword index kept inside the
ledger, and ``search`` tying them together.
"""

from janus_stack.retrieve.filters import Filters
from janus_stack.retrieve.fusion import FusionWeights
from janus_stack.retrieve.linking import EntityLinker, LinkedEntity
from janus_stack.retrieve.search import Retriever
from janus_stack.retrieve.types import (
    MAX_K,
    MAX_QUERY_CHARS,
    EntityRef,
    GraphPath,
    Hit,
    Mode,
    RelationRef,
)

__all__ = [
    "MAX_K",
    "MAX_QUERY_CHARS",
    "EntityLinker",
    "EntityRef",
    "Filters",
    "FusionWeights",
    "GraphPath",
    "Hit",
    "LinkedEntity",
    "Mode",
    "RelationRef",
    "Retriever",
]
