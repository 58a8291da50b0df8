"""Dense search: the query's embedding against the chunk vectors of one tenant.

The vector slot applies the tenant and the metadata filters as payload
conditions and returns cosine similarities; the caller drops hits whose
chunk is not live in the ledger (a projection may lag behind a delete).
"""

from __future__ import annotations

from janus_stack.retrieve.filters import Filters
from janus_stack.retrieve.types import Candidate
from janus_stack.slots.embeddings import Embedder
from janus_stack.slots.vectors import VectorIndex


def embed_query(embedder: Embedder, query: str) -> list[float]:
    return [float(x) for x in embedder.embed([query])[0]]


def search(
    vectors: VectorIndex,
    embedder: Embedder,
    tenant: str,
    query: str,
    filters: Filters,
    limit: int,
) -> list[Candidate]:
    """The ``limit`` nearest chunks to ``query``, best first."""
    vector = embed_query(embedder, query)
    hits = vectors.search(vector, filters.vector_filter(tenant), limit=limit, with_payload=False)
    return [Candidate(chunk_id=hit.id, score=float(hit.score)) for hit in hits]
