"""A Python client for ``janus serve``: sync and async, over httpx.

    from janus_stack.client import JanusClient

    with JanusClient("http://127.0.0.1:8080", api_key="jns_...") as janus:
        janus.upload("report.pdf", tags={"team": "ops"})
        for hit in janus.search("who approved the budget?")["hits"]:
            print(hit["document"]["title"], hit["snippet"])
        for event in janus.ask_stream("who approved the budget?"):
            ...
        run = janus.start_run("research", inputs={"question": "Who commanded Apollo 8?"})
        for event in janus.stream_run(run["id"]):     # or janus.run_socket(run["id"])
            ...

Errors are :class:`JanusAPIError` subclasses carrying the server's problem
body (see ``_errors``). Both clients build every call in ``_core``.
"""

from janus_stack.client._async import AsyncJanusClient
from janus_stack.client._errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    JanusAPIError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    StreamError,
    UnauthorizedError,
    UnavailableError,
)
from janus_stack.client._sse import AskEvent, RunEvent
from janus_stack.client._sync import JanusClient
from janus_stack.client._ws import AsyncRunSocket, RunSocket

__all__ = [
    "AskEvent",
    "AsyncJanusClient",
    "AsyncRunSocket",
    "BadRequestError",
    "ConflictError",
    "ForbiddenError",
    "JanusAPIError",
    "JanusClient",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "RunEvent",
    "RunSocket",
    "StreamError",
    "UnauthorizedError",
    "UnavailableError",
]
