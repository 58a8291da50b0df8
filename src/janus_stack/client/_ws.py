"""Following a run over its WebSocket (``/v1/runs/{id}/ws``) with the ``websockets`` package.

    with client.run_socket(run_id) as socket:
        for event in socket:                  # RunEvent: event, token, run, feedback, end
            if event.kind == "run" and event.data["status"] == "paused":
                socket.feedback("Go ahead", resume=True)

The iteration ends after the ``end`` event (the run finished, failed or was
cancelled); a refusal (401, 403, 404...) raises the matching
:class:`JanusAPIError` on connecting, while a refused message (feedback
without ``runs:control``) arrives as an ``error`` event and the stream goes
on. Leaving early only closes the socket: the run goes on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any, Self

from janus_stack.client._errors import JanusAPIError, StreamError, error_for
from janus_stack.client._sse import RunEvent


def _event(text: str | bytes) -> RunEvent:
    message = json.loads(text)
    if not isinstance(message, dict):
        raise StreamError(500, {"error": {"message": f"unexpected message {message!r}"}})
    return RunEvent(str(message.get("type")), message.get("data"))


def _error(event: RunEvent) -> JanusAPIError:
    """A refusal on connecting: the same error an HTTP call would raise."""
    body = event.data if isinstance(event.data, dict) else {"error": {"message": str(event.data)}}
    return error_for(int(body.get("error", {}).get("status", 500)), body, {})


_HANDSHAKE = frozenset(
    {"host", "connection", "upgrade", "accept", "accept-encoding", "content-length",
     "content-type", "transfer-encoding", "keep-alive"}
)  # fmt: skip


def socket_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's headers minus those of HTTP framing (``Connection: keep-alive`` would
    turn the upgrade request into a plain GET)."""
    return {
        k: v
        for k, v in headers.items()
        if k.lower() not in _HANDSHAKE and not k.lower().startswith("sec-websocket")
    }


def _feedback(text: str, resume: bool) -> str:
    return json.dumps({"type": "feedback", "text": text, "resume": resume})


class RunSocket:
    """A synchronous WebSocket follower of one run (see the module docstring)."""

    def __init__(self, url: str, headers: Mapping[str, str], *, open_timeout: float = 30) -> None:
        from websockets.sync.client import connect  # noqa: PLC0415 - optional at import

        # Entered as a context manager (websockets 17 warns otherwise); closed by close().
        self._connection = connect(
            url, additional_headers=socket_headers(headers), open_timeout=open_timeout
        ).__enter__()
        self._first: RunEvent | None = self._receive()
        if self._first is not None and self._first.kind == "error":
            self.close()
            raise _error(self._first)
        self.ended = False

    def _receive(self) -> RunEvent | None:
        from websockets.exceptions import ConnectionClosed  # noqa: PLC0415

        try:
            return _event(self._connection.recv())
        except ConnectionClosed:
            return None

    def __iter__(self) -> Iterator[RunEvent]:
        while not self.ended:
            event = self._first or self._receive()
            self._first = None
            if event is None:
                return
            if event.kind == "end":
                self.ended = True
            yield event

    def feedback(self, text: str, *, resume: bool = False) -> None:
        """Answer the human step the run waits for; ``resume`` continues a paused run."""
        self._connection.send(_feedback(text, resume))

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRunSocket:
    """The asyncio twin of :class:`RunSocket`: ``async with`` and ``async for``."""

    def __init__(self, url: str, headers: Mapping[str, str], *, open_timeout: float = 30) -> None:
        self._url = url
        self._headers = socket_headers(headers)
        self._open_timeout = open_timeout
        self._connection: Any = None
        self._first: RunEvent | None = None
        self.ended = False

    async def __aenter__(self) -> Self:
        from websockets.asyncio.client import connect  # noqa: PLC0415

        self._connection = await connect(
            self._url, additional_headers=self._headers, open_timeout=self._open_timeout
        )
        self._first = await self._receive()
        if self._first is not None and self._first.kind == "error":
            await self.close()
            raise _error(self._first)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _receive(self) -> RunEvent | None:
        from websockets.exceptions import ConnectionClosed  # noqa: PLC0415

        try:
            return _event(await self._connection.recv())
        except ConnectionClosed:
            return None

    async def __aiter__(self) -> AsyncIterator[RunEvent]:
        while not self.ended:
            event = self._first or await self._receive()
            self._first = None
            if event is None:
                return
            if event.kind == "end":
                self.ended = True
            yield event

    async def feedback(self, text: str, *, resume: bool = False) -> None:
        await self._connection.send(_feedback(text, resume))

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
