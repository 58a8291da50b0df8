"""``/v1/memory``, ``/v1/search`` and ``/v1/ask`` (optionally streamed as server-sent events)."""

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
        default=None, description="field → value: doc_id, document_id, source, title, page, "
        "tags.<name>", max_length=20,
    )  # fmt: skip


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    filters: dict[str, FilterValue] | None = Field(default=None, max_length=20)
    stream: bool = Field(default=False, description="Answer as server-sent events.")
    k: int = Field(default=8, ge=1, le=50)


@router.get("/memory", summary="Everything the memory holds about one topic")
async def memory(
    request: Request,
    principal: Annotated[Principal, Depends(require(Permission.MEMORY_READ))],
    topic: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 8,
) -> dict[str, Any]:
    state = api_state(request)
    start = time.perf_counter()
    view = await state.guard.read(
        recall, state.janus, topic, tenant=principal.tenant, k=k, retriever=state.retriever
    )
    state.metrics.retrieval.labels("memory").observe(time.perf_counter() - start)
    return view.as_dict()


@router.post("/search", summary="Search the memory (dense, keyword, graph or hybrid)")
async def search(
    request: Request,
    body: SearchRequest,
    principal: Annotated[Principal, Depends(require(Permission.MEMORY_READ))],
) -> dict[str, Any]:
    state = api_state(request)
    start = time.perf_counter()
    hits = await state.guard.read(
        state.retriever.search,
        body.query,
        mode=body.mode,
        k=body.k,
        tenant=principal.tenant,
        filters=body.filters,
    )
    state.metrics.retrieval.labels(body.mode.value).observe(time.perf_counter() - start)
    return {
        "query": body.query,
        "mode": body.mode.value,
        "tenant": principal.tenant,
        "hits": [hit.as_dict() for hit in hits],
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
    answerer = state.answerer(k=body.k)
    if body.stream:
        events = answer_events(
            state, request, answerer, body.question, principal.tenant, body.filters
        )
        return EventSourceResponse(events, ping=15, send_timeout=30)
    start = time.perf_counter()
    answer = await state.guard.read(
        answerer.ask, body.question, tenant=principal.tenant, filters=body.filters
    )
    state.metrics.retrieval.labels("ask").observe(time.perf_counter() - start)
    return answer.as_dict()
