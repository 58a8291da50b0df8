"""``/v1/runs``: start workflow runs, follow them (SSE, WebSocket) and steer them.

A run belongs to the tenant of the key that started it (an admin may pass
``?tenant=``); another tenant's run id is a 404. Permissions: ``runs:start``
(start), ``runs:read`` (list, get, stream), ``runs:control`` (pause, resume,
cancel, feedback). Agent keys may start and follow runs of their tenant only.

The WebSocket (``/v1/runs/{id}/ws``) authenticates with the same headers
(``Authorization: Bearer`` or ``X-API-Key``); a refusal is sent as
``{"type": "error", "data": <problem>}`` and the socket closed with code
4000 + the HTTP status. The server pushes ``{"type": kind, "data": ...}``
(kinds as in :mod:`janus_stack.api.run_stream`) until the run ends (a paused
run keeps the socket open); the client may send
``{"type": "feedback", "text": "...", "resume": true}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, WebSocket
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sse_starlette.sse import EventSourceResponse
from starlette.websockets import WebSocketDisconnect, WebSocketState

from janus_stack.agents.sourcefile import MAX_FILE_BYTES
from janus_stack.api.auth import Principal, authenticate, authorize, forbid, require
from janus_stack.api.errors import classify, problem_for
from janus_stack.api.keys import Permission
from janus_stack.api.run_stream import MAX_CURSOR, Cursor, run_updates
from janus_stack.api.state import ApiState, api_state
from janus_stack.errors import InvalidInputError, JanusError, NotFoundError
from janus_stack.workflows.runs import MAX_FEEDBACK_CHARS
from janus_stack.workflows.store import (
    PAUSED,
    QUEUED,
    RUN_STATUSES,
    RUNNING,
    RUNS,
    TERMINAL,
    RunRecord,
)

router = APIRouter(prefix="/v1/runs", tags=["runs"])

RunId = Annotated[str, Path(min_length=1, max_length=64)]
MAX_PAGE = 200
MAX_TOKENS = 100_000  # streamed pieces joined into a run's text


class StartRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow: str | None = Field(
        default=None, max_length=100, description="A workflow name from the workflow directories."
    )
    spec: dict[str, Any] | str | None = Field(
        default=None, description="The workflow itself: an object, or YAML/JSON text."
    )
    inputs: dict[str, Any] = Field(default_factory=dict, max_length=100)


class Resume(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rerun_interrupted: bool = Field(
        default=False,
        description="Let the tool calls a crash interrupted run again, in tools that are not "
        "idempotent (without it the run fails again at such a call): set it once a person has "
        "checked what the interrupted call did. As `janus runs resume --rerun-interrupted`.",
    )


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_FEEDBACK_CHARS)
    resume: bool = Field(default=False, description="Resume the run if it is paused.")


async def load_run(state: ApiState, run_id: str, principal: Principal) -> RunRecord:
    """The run, if it belongs to the principal's tenant; otherwise it does not exist (404)."""
    try:
        record = await state.guard.read(state.workbench.runs.store.run, run_id)
    except NotFoundError:
        record = None
    if record is None or record.tenant != principal.tenant:
        raise NotFoundError(f"no run {run_id!r}", hint="GET /v1/runs lists this tenant's runs")
    return record


@router.post("", status_code=201, summary="Start a run of a workflow (by name or posted spec)")
async def start_run(
    request: Request,
    body: StartRun,
    principal: Annotated[Principal, Depends(require(Permission.RUNS_START))],
) -> dict[str, Any]:
    state = api_state(request)
    work = state.workbench
    if (body.workflow is None) == (body.spec is None):
        raise InvalidInputError("give exactly one of workflow (a name) or spec (the workflow)")

    def start() -> dict[str, Any]:
        if body.workflow is not None:
            spec = work.workflow(body.workflow)
        else:
            text = body.spec if isinstance(body.spec, str) else json.dumps(body.spec)
            if len(text) > MAX_FILE_BYTES:
                raise InvalidInputError(f"spec is over {MAX_FILE_BYTES} bytes")
            spec = work.parse_workflow(text, "<spec>")
        return work.runs.request(
            spec, body.inputs, tenant=principal.tenant, actor=principal.actor
        ).as_dict()

    return await state.guard.read(start)


@router.get("", summary="This tenant's runs, newest first, paged")
async def list_runs(
    request: Request,
    principal: Annotated[Principal, Depends(require(Permission.RUNS_READ))],
    status: Annotated[str | None, Query(max_length=32)] = None,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    if status is not None and status not in RUN_STATUSES:
        raise InvalidInputError(f"unknown status {status!r}; one of {', '.join(RUN_STATUSES)}")
    state = api_state(request)
    ledger = state.janus.ledger

    def page() -> list[RunRecord]:
        query = (
            select(RUNS)
            .where(RUNS.c.tenant_id == principal.tenant)
            .order_by(RUNS.c.created_at.desc(), RUNS.c.id)
            .offset(offset)
            .limit(limit + 1)
        )
        if status is not None:
            query = query.where(RUNS.c.status == status)
        if workflow is not None:
            query = query.where(RUNS.c.workflow == workflow)
        with ledger.engine.connect() as connection:
            return [RunRecord.of(row) for row in connection.execute(query)]

    records = await state.guard.read(page)
    more = len(records) > limit
    return {
        "runs": [r.as_dict() for r in records[:limit]],
        "next_offset": offset + limit if more else None,
    }


@router.get("/{run_id}", summary="A run: status, steps, usage, tool calls, feedback, text")
async def get_run(
    request: Request,
    principal: Annotated[Principal, Depends(require(Permission.RUNS_READ))],
    run_id: RunId,
) -> dict[str, Any]:
    """``tokens`` is the text the run's steps streamed, joined (as ``janus runs show``)."""
    state = api_state(request)
    record = await load_run(state, run_id, principal)
    store = state.workbench.runs.store

    def detail() -> dict[str, Any]:
        data = store.detail(record)
        data["tokens"] = "".join(
            text for _id, _step, text in store.tokens(record.id, 0, MAX_TOKENS)
        )
        return data

    return await state.guard.read(detail)


async def _steer(
    request: Request, principal: Principal, run_id: str, action: str, *, rerun: bool = False
) -> RunRecord:
    state = api_state(request)
    record = await load_run(state, run_id, principal)
    runs = state.workbench.runs
    if action == "resume":
        return await state.guard.read(
            runs.resume, record.id, principal.actor, rerun_interrupted=rerun
        )
    method = {"pause": runs.pause, "cancel": runs.cancel}[action]
    return await state.guard.read(method, record.id, principal.actor)


@router.post("/{run_id}/pause", summary="Pause at the next step boundary")
async def pause_run(
    request: Request,
    principal: Annotated[Principal, Depends(require(Permission.RUNS_CONTROL))],
    run_id: RunId,
) -> dict[str, Any]:
    return (await _steer(request, principal, run_id, "pause")).as_dict()


@router.post("/{run_id}/resume", summary="Continue a paused, failed or interrupted run")
async def resume_run(
    request: Request,
    principal: Annotated[Principal, Depends(require(Permission.RUNS_CONTROL))],
    run_id: RunId,
    body: Resume | None = None,
) -> dict[str, Any]:
    """The body is optional; ``{"rerun_interrupted": true}`` re-arms interrupted tool calls."""
    rerun = body is not None and body.rerun_interrupted
    return (await _steer(request, principal, run_id, "resume", rerun=rerun)).as_dict()


@router.post("/{run_id}/cancel", summary="Cancel at the next step boundary")
async def cancel_run(
    request: Request,
    principal: Annotated[Principal, Depends(require(Permission.RUNS_CONTROL))],
    run_id: RunId,
) -> dict[str, Any]:
    return (await _steer(request, principal, run_id, "cancel")).as_dict()


def _feedback(state: ApiState, record: RunRecord, text: str, resume: bool, actor: str) -> bool:
    runs = state.workbench.runs
    runs.feedback(record.id, text, actor)
    if resume and runs.store.run(record.id).status == PAUSED:
        runs.resume(record.id, actor)
        return True
    return False


@router.post("/{run_id}/feedback", summary="Answer the human step a run waits for (or a note)")
async def run_feedback(
    request: Request,
    body: Feedback,
    principal: Annotated[Principal, Depends(require(Permission.RUNS_CONTROL))],
    run_id: RunId,
) -> dict[str, Any]:
    state = api_state(request)
    record = await load_run(state, run_id, principal)
    resumed = await state.guard.read(
        _feedback, state, record, body.text, body.resume, principal.actor
    )
    current = await state.guard.read(state.workbench.runs.store.run, record.id)
    return {"run": current.as_dict(), "resumed": resumed}


@router.get(
    "/{run_id}/stream",
    summary="Follow a run as server-sent events until it stops (done, failed, paused...)",
    responses={200: {"content": {"text/event-stream": {}}}},
    response_model=None,
)
async def stream_run(
    request: Request,
    principal: Annotated[Principal, Depends(require(Permission.RUNS_READ))],
    run_id: RunId,
    after_event: Annotated[int, Query(ge=0, le=MAX_CURSOR)] = 0,
    after_token: Annotated[int, Query(ge=0, le=MAX_CURSOR)] = 0,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> EventSourceResponse:
    """Events: ``event``, ``token``, ``run`` (status changes), then ``end`` (the run with
    its steps). Each SSE id is the cursor ``EVENT:TOKEN``: reconnecting with
    ``Last-Event-ID`` continues where the stream left off."""
    state = api_state(request)
    record = await load_run(state, run_id, principal)
    cursor = Cursor.parse(last_event_id, after_event, after_token)

    async def events() -> Any:
        finished = False
        try:
            stop = {s for s in RUN_STATUSES if s not in (QUEUED, RUNNING)}
            async for kind, data in run_updates(state, record.id, cursor, stop):
                yield {
                    "event": kind,
                    "id": str(cursor),
                    "data": json.dumps(data, ensure_ascii=False, default=str),
                }
            finished = True
        finally:
            if not finished:
                state.metrics.sse_disconnects.inc()

    return EventSourceResponse(events(), ping=15, send_timeout=30)


class _Socket:
    """One follower of a run over a WebSocket: a pusher and a listener sharing a send lock."""

    def __init__(self, websocket: WebSocket, state: ApiState) -> None:
        self.websocket = websocket
        self.state = state
        self.lock = asyncio.Lock()

    async def send(self, kind: str, data: Any) -> None:
        text = json.dumps({"type": kind, "data": data}, ensure_ascii=False, default=str)
        async with self.lock:
            await self.websocket.send_text(text)

    async def refuse(self, exc: JanusError) -> None:
        await self.send("error", problem_for(exc))

    async def open(self, run_id: str, tenant: str | None) -> tuple[Principal, RunRecord] | None:
        try:
            if len(run_id) > 64 or (tenant is not None and len(tenant) > 64):
                raise InvalidInputError("run id and tenant are at most 64 characters")
            key = await authenticate(self.websocket)
            principal = await authorize(self.websocket, key, Permission.RUNS_READ, tenant)
            record = await load_run(self.state, run_id, principal)
        except JanusError as exc:
            await self.refuse(exc)
            await self.websocket.close(code=4000 + classify(exc)[0])
            return None
        return principal, record

    async def push(self, record: RunRecord, cursor: Cursor) -> None:
        async for kind, data in run_updates(self.state, record.id, cursor, TERMINAL):
            await self.send(kind, data)

    async def listen(self, principal: Principal, record: RunRecord) -> None:
        while True:
            text = await self.websocket.receive_text()
            try:
                await self.handle(principal, record, text)
            except JanusError as exc:
                await self.refuse(exc)
            except ValueError as exc:  # malformed JSON or a feedback body pydantic refused
                await self.refuse(InvalidInputError(f"bad message: {str(exc)[:300]}"))

    async def handle(self, principal: Principal, record: RunRecord, text: str) -> None:
        message = json.loads(text)
        if not isinstance(message, dict) or message.get("type") != "feedback":
            raise InvalidInputError(
                'unknown message; send {"type": "feedback", "text": "...", "resume": false}'
            )
        body = Feedback.model_validate(
            {"text": message.get("text"), "resume": bool(message.get("resume", False))}
        )
        if Permission.RUNS_CONTROL not in principal.key.permissions:
            await forbid(
                self.websocket, principal,
                f"role {principal.key.role.value!r} does not grant 'runs:control'", "permission",
            )  # fmt: skip
        resumed = await self.state.guard.read(
            _feedback, self.state, record, body.text, body.resume, principal.actor
        )
        await self.send("feedback", {"resumed": resumed})


@router.websocket("/{run_id}/ws")
async def run_socket(
    websocket: WebSocket,
    run_id: str,
    tenant: str | None = None,
    after_event: int = 0,
    after_token: int = 0,
) -> None:
    await websocket.accept()
    state = api_state(websocket)
    socket = _Socket(websocket, state)
    opened = await socket.open(run_id, tenant)
    if opened is None:
        return
    principal, record = opened
    pusher = asyncio.create_task(socket.push(record, Cursor(after_event, after_token)))
    listener = asyncio.create_task(socket.listen(principal, record))
    try:
        done, _pending = await asyncio.wait({pusher, listener}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pusher, listener):
            task.cancel()
        for task in (pusher, listener):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
    ended = pusher in done and not pusher.cancelled() and pusher.exception() is None
    if not ended:
        state.metrics.sse_disconnects.inc()
    if websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(code=1000 if ended else 1011)
