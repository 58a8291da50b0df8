"""``/v1/memory``, ``/v1/search`` and ``/v1/ask`` (optionally streamed as server-sent events).

Sources in hits, citations and topic memories, and the ``source`` filter,
are the client's view of them (:mod:`janus_stack.api.sources`): an upload's
name, a server file's name, never a path of the server's.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse

from janus_stack.api.auth import Principal, require
from janus_stack.api.keys import Permission
from janus_stack.api.state import api_state
from janus_stack.api.streaming import answer_events
from janus_stack.retrieve.evidence import MAX_ROUNDS
from janus_stack.retrieve.filters import Filters
from janus_stack.retrieve.memory import recall
from janus_stack.retrieve.types import MAX_K, MAX_QUERY_CHARS, Mode

router = APIRouter(prefix="/v1", tags=["memory"])

FilterValue = Annotated[str, Field(max_length=1000)] | int


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    mode: Mode = Mode.HYBRID
    k: int = Field(default=10, ge=1, le=MAX_K)
    filters: dict[str, FilterValue] | None = Field(
        default=None, description="field → value: doc_id, document_id, source (as hits show "
        "it), title, page, tags.<name>", max_length=20,
    )  # fmt: skip


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    filters: dict[str, FilterValue] | None = Field(default=None, max_length=20)
    stream: bool = Field(default=False, description="Answer as server-sent events.")
    k: int = Field(default=8, ge=1, le=50)
    rounds: int = Field(default=2, ge=1, le=MAX_ROUNDS, description="Retrieval rounds at most.")


@router.get("/memory", summary="Everything the memory holds about one topic")
async def memory(
    request: Request,
    principal: Annotated[Principal, Depends(require(Permission.MEMORY_READ))],
    topic: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 8,
    given: Annotated[
        list[str] | None,
        Query(alias="filter", max_length=20, description="field=value, repeatable."),
    ] = None,
) -> dict[str, Any]:
    state = api_state(request)
    sources = state.sources(principal.tenant)
    filters = sources.filters(Filters.parse(given or []).as_dict())
    start = time.perf_counter()
    view = await state.guard.read(
        recall, state.janus, topic, tenant=principal.tenant, k=k, retriever=state.retriever,
        filters=filters,
    )  # fmt: skip
    state.metrics.retrieval.labels("memory").observe(time.perf_counter() - start)
    return sources.memory(view.as_dict())


@router.post("/search", summary="Search the memory (dense, keyword, graph or hybrid)")
async def search(
    request: Request,
    body: SearchRequest,
    principal: Annotated[Principal, Depends(require(Permission.MEMORY_READ))],
) -> dict[str, Any]:
    state = api_state(request)
    sources = state.sources(principal.tenant)
    asked = Filters.parse(body.filters)
    start = time.perf_counter()
    hits, entities = await state.guard.read(
        state.retriever.search_linked,
        body.query,
        mode=body.mode,
        k=body.k,
        tenant=principal.tenant,
        filters=Filters.parse(sources.filters(asked.as_dict())),
    )
    took = time.perf_counter() - start
    state.metrics.retrieval.labels(body.mode.value).observe(took)
    hybrid = body.mode is Mode.HYBRID
    return {
        "query": body.query,
        "mode": body.mode.value,
        "tenant": principal.tenant,
        "k": body.k,
        "filters": asked.as_dict(),
        "weights": state.retriever.weights.as_dict() if hybrid else None,
        "entities": [
            {"id": e.id, "name": e.name, "type": e.type, "score": e.score} for e in entities
        ],
        "took_ms": round(took * 1000, 1),
        "hits": sources.hits([hit.as_dict() for hit in hits]),
    }


@router.post(
    "/ask",
    summary="Answer a question with citations; stream=true answers as server-sent events",
    responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}},
    response_model=None,
)
async def ask(
    request: Request,
    body: AskRequest,
    principal: Annotated[Principal, Depends(require(Permission.MEMORY_READ))],
) -> dict[str, Any] | EventSourceResponse:
    """Events of a stream: ``retrieval`` (evidence summary), ``token`` (text),
    ``answer`` (the full answer as JSON), or ``error`` (a problem body), then the
    stream ends."""
    state = api_state(request)
    answerer = state.answerer(k=body.k, rounds=body.rounds)
    sources = state.sources(principal.tenant)
    filters = sources.filters(body.filters)
    if body.stream:
        events = answer_events(state, request, answerer, body.question, principal.tenant, filters)
        return EventSourceResponse(events, ping=15, send_timeout=30)
    start = time.perf_counter()
    answer = await state.guard.read(
        answerer.ask, body.question, tenant=principal.tenant, filters=filters
    )
    state.metrics.retrieval.labels("ask").observe(time.perf_counter() - start)
    return sources.answer(answer.as_dict())
