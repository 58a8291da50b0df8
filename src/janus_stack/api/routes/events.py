"""``/v1/events``: query the audit log (own tenant; admins any or all) and verify its chain."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from janus_stack.api.auth import Principal, forbid, require
from janus_stack.api.keys import Permission
from janus_stack.api.run_stream import MAX_CURSOR
from janus_stack.api.state import api_state
from janus_stack.errors import InvalidInputError
from janus_stack.events import MAX_QUERY_LIMIT

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.get("", summary="Audit events, oldest first, paged by seq")
async def query_events(
    request: Request,
    principal: Annotated[Principal, Depends(require(Permission.EVENTS_READ))],
    type: Annotated[
        str | None, Query(max_length=100, description="Exact type or a family 'ingest.*'.")
    ] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    subject: Annotated[str | None, Query(max_length=500)] = None,
    since: Annotated[datetime | None, Query(description="Inclusive, ISO-8601 with zone.")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive, ISO-8601 with zone.")] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_CURSOR, description="The next_after of the last page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_QUERY_LIMIT)] = 100,
    all_tenants: Annotated[
        bool, Query(description="Admin keys only: events of every tenant.")
    ] = False,
) -> dict[str, Any]:
    state = api_state(request)
    tenant: str | None = principal.tenant
    if all_tenants:
        if Permission.TENANTS_ANY not in principal.key.permissions:
            await forbid(
                request, principal, "only admin keys may read the events of every tenant",
                "cross_tenant",
            )  # fmt: skip
        tenant = None
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInputError(f"{name} must carry a time zone, e.g. 2025-01-01T00:00:00Z")
    events = await state.guard.read(
        state.janus.events.query,
        tenant=tenant,
        type=type,
        actor=actor,
        subject=subject,
        since=since,
        until=until,
        after_seq=after,
        limit=limit,
    )
    return {
        "events": [event.to_dict() for event in events],
        "next_after": events[-1].seq if len(events) == limit else None,
    }


@router.post("/verify", summary="Recompute the whole hash chain")
async def verify_events(
    request: Request,
    _principal: Annotated[Principal, Depends(require(Permission.EVENTS_VERIFY))],
) -> dict[str, Any]:
    state = api_state(request)
    report = await state.guard.read(state.janus.events.verify)
    return asdict(report)
