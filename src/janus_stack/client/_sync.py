"""The synchronous client: ``JanusClient``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx

from janus_stack.client import _core as core
from janus_stack.client._errors import StreamError
from janus_stack.client._sse import AskEvent, RunEvent, SSEDecoder
from janus_stack.client._ws import RunSocket

DEFAULT_URL = "http://127.0.0.1:8080"


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object from the server, got {type(value).__name__}")
    return value


class JanusClient:
    """A client of ``janus serve``; use it as a context manager or call ``close()``.

    Args:
        base_url: where the server listens.
        api_key: a token from ``janus keys create`` (sent as a bearer token).
        timeout: seconds for connect/read (a streamed answer may take longer
            between events only if the model is that slow).
        transport: an httpx transport, e.g. for tests.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers=core.headers(api_key, headers),
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: core.Call) -> Any:
        response = self._http.request(call.method, call.path, **core.request_kwargs(call))
        return core.read(response, call)

    def health(self) -> dict[str, Any]:
        """Liveness: ``{"status": "ok"}``."""
        return _object(self._send(core.health()))

    def ready(self) -> dict[str, Any]:
        """Readiness with per-slot status (raises ``UnavailableError`` on 503)."""
        return _object(self._send(core.ready()))

    def system(self) -> dict[str, Any]:
        """CPU, memory, disk and queue depths (admin)."""
        return _object(self._send(core.system()))

    def upload(
        self,
        file: core.FileInput,
        *,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        entities: bool = True,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """Upload a file (path, bytes or binary stream) and ingest it; ``name`` (default:
        the path's file name) may be a relative path, ``notes/x.md``; the same name again
        is a new version of that document."""
        return _object(
            self._send(core.upload(file, name=name, tags=tags, entities=entities, tenant=tenant))
        )

    def list_documents(
        self,
        *,
        status: str | None = None,
        title: str | None = None,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int = 50,
        offset: int = 0,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """``{"documents": [...], "total": n, ...}``."""
        return _object(
            self._send(
                core.list_documents(
                    status=status,
                    title=title,
                    name=name,
                    tags=tags,
                    limit=limit,
                    offset=offset,
                    tenant=tenant,
                )
            )
        )

    def get_document(
        self,
        document_id: str,
        *,
        chunk_limit: int = 100,
        chunk_offset: int = 0,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """One document with its versions and a page of its chunks."""
        return _object(
            self._send(
                core.get_document(
                    document_id, chunk_limit=chunk_limit, chunk_offset=chunk_offset, tenant=tenant
                )
            )
        )

    def delete_document(self, document_id: str, *, tenant: str | None = None) -> dict[str, Any]:
        """Delete a document from every store."""
        return _object(self._send(core.delete_document(document_id, tenant=tenant)))

    def memory(
        self,
        topic: str,
        *,
        k: int = 8,
        filters: Mapping[str, str | int] | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """Everything the memory holds about ``topic``."""
        return _object(self._send(core.memory(topic, k=k, filters=filters, tenant=tenant)))

    def search(
        self,
        query: str,
        *,
        mode: str = "hybrid",
        k: int = 10,
        filters: Mapping[str, str | int] | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """``{"hits": [...]}`` best first."""
        return _object(
            self._send(core.search(query, mode=mode, k=k, filters=filters, tenant=tenant))
        )

    def ask(
        self,
        question: str,
        *,
        filters: Mapping[str, str | int] | None = None,
        k: int = 8,
        rounds: int = 2,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """The answer with citations, in one response."""
        call = core.ask(question, filters=filters, k=k, rounds=rounds, tenant=tenant)
        return _object(self._send(call))

    def events(
        self,
        *,
        type: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int | None = None,
        limit: int = 100,
        all_tenants: bool = False,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """Audit events, oldest first; page on with ``after=page["next_after"]``."""
        return _object(
            self._send(
                core.events(
                    type=type,
                    actor=actor,
                    subject=subject,
                    since=since,
                    until=until,
                    after=after,
                    limit=limit,
                    all_tenants=all_tenants,
                    tenant=tenant,
                )
            )
        )

    def verify_events(self) -> dict[str, Any]:
        """Recompute the audit log's hash chain (admin)."""
        return _object(self._send(core.verify_events()))

    def metrics(self) -> str:
        """The Prometheus text of ``/metrics``."""
        data = self._send(core.metrics())
        assert isinstance(data, bytes)
        return data.decode()

    def download(self, document_id: str, *, tenant: str | None = None) -> bytes:
        """The stored bytes of a document's current version."""
        data = self._send(core.download(document_id, tenant=tenant))
        assert isinstance(data, bytes)
        return data

    def ask_stream(
        self,
        question: str,
        *,
        filters: Mapping[str, str | int] | None = None,
        k: int = 8,
        rounds: int = 2,
        tenant: str | None = None,
    ) -> Iterator[AskEvent]:
        """The answer as events (``retrieval``, ``token``…, ``answer``) while it is made.

        Leaving the loop early closes the connection, and the server stops
        working on the answer. An ``error`` event raises ``StreamError``.
        """
        call = core.ask(question, filters=filters, k=k, rounds=rounds, stream=True, tenant=tenant)
        with self._http.stream(call.method, call.path, **core.request_kwargs(call)) as response:
            if response.status_code >= 400:
                response.read()
                core.read(response, call)
            decoder = SSEDecoder()
            for line in response.iter_lines():
                event = decoder.feed(line)
                if event is None:
                    continue
                if event.kind == "error":
                    raise StreamError(int(event.data["error"]["status"]), event.data)
                yield event

    # -- agents and runs ------------------------------------------------------------

    def list_agents(self) -> dict[str, Any]:
        """Every agent manifest (``agents``), invalid files (``invalid``) and ``tools``."""
        return _object(self._send(core.list_agents()))

    def get_agent(self, name: str) -> dict[str, Any]:
        """One agent's whole manifest."""
        return _object(self._send(core.get_agent(name)))

    def list_workflows(self) -> dict[str, Any]:
        """``{"workflows": [...]}``: what ``start_run`` may name, invalid files with problems."""
        return _object(self._send(core.list_workflows()))

    def validate_agent(self, source: core.SourceInput) -> dict[str, Any]:
        """``{"ok", "problems", "agent"}`` for a manifest (YAML/JSON text, Path or mapping)."""
        return _object(self._send(core.validate_agent(source)))

    def validate_workflow(self, source: core.SourceInput) -> dict[str, Any]:
        """``{"ok", "problems", "workflow"}`` for a workflow (YAML/JSON text, Path or mapping)."""
        return _object(self._send(core.validate_workflow(source)))

    def start_run(
        self,
        workflow: str | None = None,
        *,
        spec: core.SourceInput | None = None,
        inputs: Mapping[str, Any] | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """Start a run of a server-side workflow by name, or of a posted ``spec``."""
        return _object(
            self._send(core.start_run(workflow, spec=spec, inputs=inputs, tenant=tenant))
        )

    def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 50,
        offset: int = 0,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """``{"runs": [...], "next_offset": n | None}``, newest first."""
        call = core.list_runs(
            status=status, workflow=workflow, limit=limit, offset=offset, tenant=tenant
        )
        return _object(self._send(call))

    def get_run(self, run_id: str, *, tenant: str | None = None) -> dict[str, Any]:
        """A run with its status, usage, steps, tool calls and feedback."""
        return _object(self._send(core.get_run(run_id, tenant=tenant)))

    def pause_run(self, run_id: str, *, tenant: str | None = None) -> dict[str, Any]:
        """Pause at the next step boundary (a queued run pauses at once)."""
        return _object(self._send(core.steer_run(run_id, "pause", tenant=tenant)))

    def resume_run(
        self, run_id: str, *, rerun_interrupted: bool = False, tenant: str | None = None
    ) -> dict[str, Any]:
        """Continue a paused, failed or interrupted run.

        ``rerun_interrupted``: let the tool calls a crash interrupted (in tools
        that are not idempotent) run again, once someone checked their effect.
        """
        call = core.resume_run(run_id, rerun_interrupted=rerun_interrupted, tenant=tenant)
        return _object(self._send(call))

    def cancel_run(self, run_id: str, *, tenant: str | None = None) -> dict[str, Any]:
        """Cancel at the next step boundary."""
        return _object(self._send(core.steer_run(run_id, "cancel", tenant=tenant)))

    def run_feedback(
        self, run_id: str, text: str, *, resume: bool = False, tenant: str | None = None
    ) -> dict[str, Any]:
        """Answer the human step a paused run waits for; ``resume=True`` continues it."""
        return _object(self._send(core.run_feedback(run_id, text, resume=resume, tenant=tenant)))

    def stream_run(
        self,
        run_id: str,
        *,
        after_event: int = 0,
        after_token: int = 0,
        tenant: str | None = None,
    ) -> Iterator[RunEvent]:
        """A run's updates as server-sent events until it stops (done, failed, paused...).

        Kinds: ``event``, ``token``, ``run`` (status changes), then ``end``.
        Leaving the loop closes the connection; the run goes on.
        """
        call = core.stream_run(
            run_id, after_event=after_event, after_token=after_token, tenant=tenant
        )
        with self._http.stream(call.method, call.path, **core.request_kwargs(call)) as response:
            if response.status_code >= 400:
                response.read()
                core.read(response, call)
            decoder = SSEDecoder()
            for line in response.iter_lines():
                event = decoder.feed(line)
                if event is not None:
                    yield RunEvent(event.kind, event.data)
                    if event.kind == "end":
                        return

    # -- API keys (admin) ---------------------------------------------------------------

    def create_key(
        self,
        role: str,
        *,
        scopes: Sequence[str] = (),
        name: str = "",
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """A new key of this tenant (or ``tenant``); ``token`` is in this answer only."""
        call = core.create_key(role, scopes=scopes, name=name, tenant=tenant)
        return _object(self._send(call))

    def list_keys(
        self, *, revoked: bool = False, all_tenants: bool = False, tenant: str | None = None
    ) -> dict[str, Any]:
        """``{"keys": [...]}`` without tokens or hashes."""
        call = core.list_keys(revoked=revoked, all_tenants=all_tenants, tenant=tenant)
        return _object(self._send(call))

    def revoke_key(self, key: str, *, tenant: str | None = None) -> dict[str, Any]:
        """Revoke a key by ID or prefix; requests with it are refused from then on."""
        return _object(self._send(core.revoke_key(key, tenant=tenant)))

    def run_socket(
        self,
        run_id: str,
        *,
        after_event: int = 0,
        after_token: int = 0,
        tenant: str | None = None,
    ) -> RunSocket:
        """Follow a run over its WebSocket (needs the ``websockets`` package); see RunSocket."""
        url = core.socket_url(
            str(self._http.base_url), run_id, after_event=after_event, after_token=after_token,
            tenant=tenant,
        )  # fmt: skip
        return RunSocket(url, self._http.headers)
