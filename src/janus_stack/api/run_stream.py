"""Following a run: its events, streamed tokens and status, read from the ledger.

A run executes in the queue (this server's inline workers or a ``janus
worker``), never in the request that follows it, so following is polling
the ledger: the event log (``subject = run:ID``), ``run_tokens`` and the
run's row, every :data:`POLL_SECONDS`. A follower that disconnects only
stops reading; the run goes on and can be followed again from any cursor
(``after_event``, ``after_token``; SSE's ``Last-Event-ID`` carries both).

Updates, in order within one poll: ``event`` (an audit event of the run),
``token`` (``{"id", "step", "text"}``), ``run`` (the run's record, whenever
its status changes) and finally ``end`` (the record with its steps).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

from janus_stack.api.state import ApiState
from janus_stack.workflows.store import RunRecord

POLL_SECONDS = 0.15
PAGE = 500
SETTLE_SECONDS = 0.3  # the engine appends the final event just after the status
# A cursor must fit the 64-bit columns it is compared with (ASCII digits only).
MAX_CURSOR = 10**18 - 1
_CURSOR = re.compile(r"([0-9]{1,18}):([0-9]{1,18})")


@dataclass
class Cursor:
    event: int = 0
    token: int = 0

    def __str__(self) -> str:
        return f"{self.event}:{self.token}"

    @classmethod
    def parse(cls, text: str | None, event: int, token: int) -> Cursor:
        """``Last-Event-ID`` (``EVENT:TOKEN``) wins over the query parameters."""
        found = _CURSOR.fullmatch(text) if text else None
        if found:
            return cls(int(found[1]), int(found[2]))
        return cls(event, token)


def _poll(
    state: ApiState, run_id: str, cursor: Cursor
) -> tuple[RunRecord, list[dict[str, Any]], list[tuple[int, str, str]]]:
    store = state.workbench.runs.store
    record = store.run(run_id)  # first: what follows is at least as new as this status
    events = state.janus.events.query(
        tenant=record.tenant, subject=f"run:{run_id}", after_seq=cursor.event, limit=PAGE
    )
    tokens = store.tokens(run_id, cursor.token, PAGE)
    return record, [event.to_dict() for event in events], tokens


async def run_updates(
    state: ApiState, run_id: str, cursor: Cursor, stop_at: Collection[str]
) -> AsyncIterator[tuple[str, Any]]:
    """``(kind, data)`` updates of a run until its status is one of ``stop_at``."""
    status: str | None = None
    settled = False
    while True:
        record, events, tokens = await state.guard.read(_poll, state, run_id, cursor)
        for event in events:
            cursor.event = int(event["seq"])
            yield "event", event
        for token_id, step, text in tokens:
            cursor.token = token_id
            yield "token", {"id": token_id, "step": step, "text": text}
        if record.status != status:
            status = record.status
            yield "run", record.as_dict()
        if len(events) == PAGE or len(tokens) == PAGE:
            continue
        if record.status in stop_at:
            if not settled:  # one more poll for the events written just after the status
                settled = True
                await asyncio.sleep(SETTLE_SECONDS)
                continue
            store = state.workbench.runs.store
            yield "end", await state.guard.read(store.detail, record)
            return
        settled = False
        await asyncio.sleep(POLL_SECONDS)
