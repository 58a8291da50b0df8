"""The in-process backend: this machine's JANUS_HOME, acting as one API key's principal.

It opens the same state ``janus serve`` runs on (:func:`~janus_stack.api.state.open_state`:
the context, the guard that crosses into the synchronous stores, the shared
retriever, the run service with its inline queue workers) and calls the same
functions the HTTP routes call, so an MCP tool does exactly what its route
does. What the routes' dependency does per request is done here per call:
the key is verified again (a key revoked while the session is open stops
working at once), the permission the operation needs is checked with
:func:`~janus_stack.api.auth.permission_refusal`, and a token is taken from
the key's and its tenant's rate-limit buckets with the API's own
:func:`~janus_stack.api.auth.rate_limit` (the same buckets in the cache
slot, so a shared ``redis://`` cache gives a key one budget over both). A
refusal is appended to the event log as ``auth.refused`` or
``auth.rate_limited`` (actor ``mcp``) exactly like the API's, and reaches the
model as the tool's error result. Document sources are shown as the API
shows them (:mod:`janus_stack.api.sources`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import anyio.to_thread
from starlette.datastructures import UploadFile

from janus_stack.api.app import close_state
from janus_stack.api.auth import (
    ANONYMOUS_TENANT,
    Principal,
    append_refusal,
    permission_refusal,
    rate_limit,
)
from janus_stack.api.errors import UnauthorizedError
from janus_stack.api.keys import KeyRecord, KeyStore, Permission
from janus_stack.api.metrics import Metrics
from janus_stack.api.routes.documents import document_detail, ingest_upload, list_page
from janus_stack.api.routes.runs import load_run
from janus_stack.api.sources import check_name
from janus_stack.api.state import ApiState, ServerOptions, open_state
from janus_stack.api.uploads import Upload
from janus_stack.config import Settings
from janus_stack.context import Janus
from janus_stack.errors import HomeLockedError, InvalidInputError, NotFoundError
from janus_stack.mcp.backend import FilterValue
from janus_stack.retrieve.memory import recall
from janus_stack.telemetry import Telemetry

ACTOR = "mcp"


def _subject(token: str) -> str:
    return token[:12] if token.startswith("jns_") else "anonymous"


def verify_key(settings: Settings, token: str) -> KeyRecord:
    """The live key ``token`` belongs to; an unknown or revoked key is refused and logged.

    Only the ledger is opened, so a bad key is refused before the stores and models load.
    """
    with Janus(settings) as janus:
        record = KeyStore(janus.ledger).verify(token)
        if record is None:
            append_refusal(
                janus,
                actor=ACTOR,
                tenant=ANONYMOUS_TENANT,
                subject=_subject(token),
                payload={"reason": "invalid_key", "transport": "mcp"},
            )
            raise UnauthorizedError(
                "the API key is malformed, unknown or revoked",
                hint="`janus keys list` shows this home's keys; `janus keys create` makes one",
            )
    return record


@dataclass
class LocalBackend:
    """Serves the MCP tools from an open :class:`ApiState` as the key ``token``."""

    state: ApiState
    token: str
    key: KeyRecord  # as verified at start-up; every call verifies the token again
    telemetry: Telemetry

    async def _principal(self, permission: Permission, operation: str) -> Principal:
        return await anyio.to_thread.run_sync(
            self._authorize, permission, operation, limiter=self.state.guard.limiter
        )

    def _authorize(self, permission: Permission, operation: str) -> Principal:
        janus = self.state.janus
        key = self.state.keys.verify(self.token)
        if key is None:
            append_refusal(
                janus,
                actor=ACTOR,
                tenant=ANONYMOUS_TENANT,
                subject=_subject(self.token),
                payload={"reason": "invalid_key", "transport": "mcp", "tool": operation},
            )
            raise UnauthorizedError("the API key of this MCP server was revoked")
        refusal = permission_refusal(key, permission)
        if refusal is not None:
            append_refusal(
                janus,
                actor=ACTOR,
                tenant=key.tenant,
                subject=key.prefix,
                payload={
                    "reason": "permission",
                    "permission": permission.value,
                    "transport": "mcp",
                    "tool": operation,
                },
            )
            raise refusal
        state = self.state
        rate_limit(state.janus, state.options, state.metrics, key, actor=ACTOR)
        return Principal(key=key, tenant=key.tenant)

    async def search(
        self, query: str, *, mode: str, k: int, filters: Mapping[str, FilterValue] | None
    ) -> list[dict[str, Any]]:
        principal = await self._principal(Permission.MEMORY_READ, "search")
        sources = self.state.sources(principal.tenant)
        hits, _entities = await self.state.guard.read(
            self.state.retriever.search_linked,
            query,
            mode=mode,
            k=k,
            tenant=principal.tenant,
            filters=sources.filters(filters),
        )
        return sources.hits([hit.as_dict() for hit in hits])

    async def ask(
        self, question: str, *, k: int, filters: Mapping[str, FilterValue] | None
    ) -> dict[str, Any]:
        principal = await self._principal(Permission.MEMORY_READ, "ask")
        sources = self.state.sources(principal.tenant)
        answerer = self.state.answerer(k=k)
        answer = await self.state.guard.read(
            answerer.ask, question, tenant=principal.tenant, filters=sources.filters(filters)
        )
        return sources.answer(answer.as_dict())

    async def memory(self, topic: str, *, k: int) -> dict[str, Any]:
        principal = await self._principal(Permission.MEMORY_READ, "memory")
        view = await self.state.guard.read(
            recall,
            self.state.janus,
            topic,
            tenant=principal.tenant,
            k=k,
            retriever=self.state.retriever,
        )
        return self.state.sources(principal.tenant).memory(view.as_dict())

    async def ingest(self, name: str, content: bytes, *, tags: Mapping[str, str]) -> dict[str, Any]:
        principal = await self._principal(Permission.DOCUMENTS_WRITE, "ingest")
        upload = Upload(
            file=UploadFile(BytesIO(content), size=len(content), filename=name),
            name=check_name(name),
            tags=dict(tags),
        )
        result = await self.state.guard.write(ingest_upload, self.state, principal, upload)
        result.pop("_bytes", None)
        if result["status"] == "failed":
            raise InvalidInputError(str(result.get("error") or f"{name} could not be ingested"))
        return result

    async def start_run(self, workflow: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        principal = await self._principal(Permission.RUNS_START, "run_workflow")
        work = self.state.workbench

        def start() -> dict[str, Any]:
            spec = work.workflow(workflow)
            return work.runs.request(
                spec, dict(inputs), tenant=principal.tenant, actor=principal.actor
            ).as_dict()

        return await self.state.guard.read(start)

    async def run(self, run_id: str) -> dict[str, Any]:
        principal = await self._principal(Permission.RUNS_READ, "run_status")
        try:
            record = await load_run(self.state, run_id, principal)
        except NotFoundError:
            raise NotFoundError(
                f"tenant {principal.tenant!r} has no run {run_id!r}",
                hint="run_workflow answers with the id of the run it started",
            ) from None
        return await self.state.guard.read(self.state.workbench.runs.store.detail, record)

    async def documents(self, *, limit: int, offset: int) -> dict[str, Any]:
        principal = await self._principal(Permission.DOCUMENTS_READ, "resources/list")
        return await self.state.guard.read(
            list_page, self.state, principal.tenant, None, None, None, {}, limit, offset
        )

    async def document(
        self, document_id: str, *, chunk_limit: int, chunk_offset: int
    ) -> dict[str, Any]:
        principal = await self._principal(Permission.DOCUMENTS_READ, "resources/read")
        return await self.state.guard.read(
            document_detail, self.state, principal.tenant, document_id, chunk_limit, chunk_offset
        )

    async def aclose(self) -> None:
        try:
            await anyio.to_thread.run_sync(close_state, self.state)
        finally:
            self.telemetry.close()


def open_local(settings: Settings, token: str, options: ServerOptions) -> LocalBackend:
    """Verify ``token``, then open the stores, models and run service of JANUS_HOME.

    Blocking (it loads models): call it on a worker thread from async code.
    """
    key = verify_key(settings, token)
    telemetry = Telemetry.from_settings(settings, service="janus-mcp")
    try:
        state = open_state(settings, options, Metrics(telemetry.registry), telemetry)
    except HomeLockedError as exc:
        telemetry.close()
        raise HomeLockedError(
            str(exc),
            owner_pid=exc.owner_pid,
            hint="another process (a `janus serve`?) owns this JANUS_HOME; stop it, or serve "
            "MCP through it with `janus mcp --server URL --api-key KEY`",
        ) from None
    except BaseException:
        telemetry.close()
        raise
    return LocalBackend(state=state, token=token, key=key, telemetry=telemetry)
