"""``POST /v1/ask`` with ``stream=true``: the answerer's events as server-sent events.

``Answerer.stream`` is a synchronous generator (retrieval, then tokens as a
model produces them). It runs on its own worker thread, holding the read
side of the context lock, and hands each event to the event loop through a
queue. When the client disconnects, sse-starlette cancels the response; the
thread sees the stop flag before its next event, closes the generator (so a
model call stops generating) and releases the lock. Nothing is left running.

Each SSE event is ``event: retrieval|token|answer|error`` with JSON ``data``;
the answer's citations show sources as clients see them (``api/sources.py``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import Request

from janus_stack.api.errors import classify, problem
from janus_stack.api.sources import Sources
from janus_stack.api.state import ApiState
from janus_stack.errors import JanusError
from janus_stack.retrieve.answer import Answer, Answerer, AnswerEvent

_END = object()


def _encode(event: AnswerEvent, sources: Sources) -> dict[str, str]:
    data: Any = event.data
    if isinstance(data, Answer):
        data = sources.answer(data.as_dict())
    elif event.kind == "token":
        data = {"text": data}
    return {"event": event.kind, "data": json.dumps(data, ensure_ascii=False, default=str)}


async def answer_events(
    state: ApiState,
    request: Request,
    answerer: Answerer,
    question: str,
    tenant: str,
    filters: Mapping[str, object] | None,
) -> AsyncIterator[dict[str, str]]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()
    start = time.perf_counter()
    sources = state.sources(tenant)

    def put(item: object) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def produce() -> None:
        try:
            with state.guard.lock.reading():
                events = answerer.stream(question, tenant=tenant, filters=filters)
                try:
                    for event in events:
                        if stop.is_set():
                            break
                        put(_encode(event, sources))
                finally:
                    # Closing the generator stops a model mid-answer when the client left.
                    close = getattr(events, "close", None)
                    if close is not None:
                        close()
        except JanusError as exc:
            status, name = classify(exc)
            body = problem(status, name, str(exc), exc.hint)
            put({"event": "error", "data": json.dumps(body, ensure_ascii=False)})
        except Exception as exc:  # a bug: report it in the stream, never kill the server
            body = problem(500, "internal_error", f"the answer failed: {type(exc).__name__}")
            put({"event": "error", "data": json.dumps(body)})
        finally:
            put(_END)

    async with state.guard.limiter:
        worker = threading.Thread(target=produce, name="janus-ask-stream", daemon=True)
        worker.start()
        finished = False
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    finished = True
                    break
                assert isinstance(item, dict)
                yield item
        finally:
            stop.set()
            if finished:
                state.metrics.retrieval.labels("ask").observe(time.perf_counter() - start)
            else:
                state.metrics.sse_disconnects.inc()
