"""The local backend: every data command served from this machine's JANUS_HOME."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from janus_stack.api.keys import KeyRecord, KeyStore
from janus_stack.cli._backend import EventQuery, IngestRequest, Update
from janus_stack.cli._common import CLIState
from janus_stack.cli._home import LocalHome
from janus_stack.cli._local_runs import LocalRuns
from janus_stack.cli._progress import ingest_with_progress, wait_with_progress
from janus_stack.cli.agents import workbench
from janus_stack.ingest.documents import DocumentLedger
from janus_stack.ingest.enqueue import ProjectionQueue, queued_mode
from janus_stack.ingest.pipeline import IngestOptions, Ingestor
from janus_stack.ingest.removal import delete_document
from janus_stack.ingest.tasks import register_ingest_tasks
from janus_stack.ops.inventory import list_documents, show_document
from janus_stack.retrieve import Filters, FusionWeights, Retriever
from janus_stack.retrieve.answer import Answer, Answerer
from janus_stack.retrieve.memory import recall
from janus_stack.retrieve.types import Mode
from janus_stack.workflows.catalog import describe_workflows


class LocalBackend:
    """:class:`~janus_stack.cli._backend.Backend` over JANUS_HOME (use it as a context manager)."""

    def __init__(self, cli: CLIState) -> None:
        self.home = LocalHome(cli)
        self._runs = LocalRuns(self.home)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.home.close()

    @property
    def runs(self) -> LocalRuns:
        return self._runs

    def _tenant(self, tenant: str | None) -> str:
        return tenant or self.home.settings.tenant

    # -- documents -------------------------------------------------------------------

    def ingest(self, request: IngestRequest) -> dict[str, Any]:
        janus = self.home.janus
        options = IngestOptions(
            entities=request.entities, extractor=request.extractor, max_documents=request.limit
        )
        tasks = None
        if queued_mode(janus):
            register_ingest_tasks(janus.handlers, janus)
            tasks = ProjectionQueue(janus, entities=options.entities)
        # A killed run leaves unfinished versions in the ledger: finish (or re-queue) them first.
        resumed = Ingestor(janus, janus.embedder, options, projection_queue=tasks).resume()
        report = ingest_with_progress(
            janus,
            request.files,
            tenant=self._tenant(request.tenant),
            tags=request.tags,
            options=options,
            quiet=request.quiet,
            projection_queue=tasks,
        )
        data = report.as_dict()
        data["resumed_versions"] = resumed
        if tasks is not None:
            waited = wait_with_progress(tasks, quiet=request.quiet) if request.wait else None
            data["queue"] = {
                "backend": tasks.backend,
                **tasks.work.as_dict(),
                "wait": None if waited is None else waited.as_dict(),
            }
        return data

    def delete(self, target: str, *, tenant: str | None) -> list[dict[str, Any]]:
        janus, name = self.home.janus, self._tenant(tenant)
        documents = DocumentLedger(janus.ledger)
        targets = documents.documents_of_source(name, str(Path(target).resolve()))
        return [
            delete_document(janus, name, document_id).__dict__
            for document_id in targets or [target]
        ]

    def documents(
        self, *, tenant: str | None, status: str | None, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        rows = list_documents(
            self.home.janus, self._tenant(tenant), status=status, limit=limit, offset=offset
        )
        return [{"id": row["id"], "name": Path(row["source"]).name, **row} for row in rows]

    def document(self, document_id: str, *, tenant: str | None) -> dict[str, Any]:
        data = show_document(self.home.janus, self._tenant(tenant), document_id)
        for version in data["versions"]:
            version["created_at"] = version["created_at"].isoformat()
        return {"id": data["id"], "name": Path(data["source"]).name, **data}

    # -- memory ----------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        mode: Mode,
        k: int,
        tenant: str | None,
        filters: Filters,
        weights: list[str],
        hops: int | None,
    ) -> dict[str, Any]:
        fusion = FusionWeights.parse(weights, FusionWeights(rerank=self.home.janus.settings.rerank))
        retriever = Retriever(self.home.janus, weights=fusion, hops=hops)
        started = time.perf_counter()
        hits, entities = retriever.search_linked(
            query, mode=mode, k=k, tenant=tenant, filters=filters
        )
        took = (time.perf_counter() - started) * 1000
        return {
            "query": query,
            "mode": mode.value,
            "tenant": self._tenant(tenant),
            "k": k,
            "filters": filters.as_dict(),
            "weights": fusion.as_dict() if mode is Mode.HYBRID else None,
            "entities": [
                {"id": e.id, "name": e.name, "type": e.type, "score": e.score} for e in entities
            ],
            "took_ms": round(took, 1),
            "hits": [hit.as_dict() for hit in hits],
        }

    def ask(
        self, question: str, *, tenant: str | None, filters: Filters, k: int, rounds: int
    ) -> Iterator[Update]:
        answerer = Answerer(self.home.janus, k=k, max_rounds=rounds)
        for event in answerer.stream(question, tenant=tenant, filters=filters.as_dict()):
            data = event.data.as_dict() if isinstance(event.data, Answer) else event.data
            yield Update(event.kind, data)

    def memory(self, topic: str, *, tenant: str | None, filters: Filters, k: int) -> dict[str, Any]:
        return recall(
            self.home.janus, topic, tenant=tenant, k=k, filters=filters.as_dict()
        ).as_dict()

    # -- audit -----------------------------------------------------------------------

    def events(self, query: EventQuery) -> list[dict[str, Any]]:
        events = self.home.janus.events.query(
            type=query.type,
            actor=query.actor,
            subject=query.subject,
            tenant=query.tenant,
            since=query.since.astimezone() if query.since else None,
            until=query.until.astimezone() if query.until else None,
            after_seq=query.after,
            limit=query.limit,
        )
        return [event.to_dict() for event in events]

    def verify_events(self) -> dict[str, Any]:
        return asdict(self.home.janus.events.verify())

    # -- agents and workflows ----------------------------------------------------------

    def agents(self, agents_dir: list[Path]) -> dict[str, Any]:
        registry, toolbox = workbench(self.home.settings, agents_dir)
        entries = registry.refresh()
        return {
            "directories": [str(d) for d in registry.directories],
            "agents": [
                {**e.manifest.summary(), "file": str(e.path), "valid": e.valid}
                for e in entries
                if e.manifest is not None
            ],
            "invalid": [
                {"file": str(e.path), "problems": [p.as_dict() for p in e.problems]}
                for e in entries
                if not e.valid
            ],
            "tools": toolbox.names(),
            "tool_plugin_problems": toolbox.problems,
        }

    def agent(self, name: str, agents_dir: list[Path]) -> dict[str, Any]:
        registry, _toolbox = workbench(self.home.settings, agents_dir)
        return registry.get(name).model_dump(mode="json")

    def workflows(self, workflows_dir: list[Path], agents_dir: list[Path]) -> dict[str, Any]:
        settings = self.home.settings
        registry, toolbox = workbench(settings, agents_dir)
        registry.refresh()
        directories = [settings.home / "workflows", *(d.expanduser() for d in workflows_dir)]
        return {
            "directories": [str(d) for d in directories],
            "workflows": describe_workflows(directories, registry, toolbox),
        }

    # -- API keys --------------------------------------------------------------------

    def create_key(self, *, tenant: str, role: str, scopes: list[str], name: str) -> dict[str, Any]:
        janus = self.home.janus
        record, token = KeyStore(janus.ledger).create(
            tenant=tenant, role=role, scopes=scopes, name=name
        )
        payload = {"key_id": record.id, "role": record.role.value, "scopes": list(record.scopes)}
        self._key_event(record, "auth.key.created", payload)
        return {**record.as_dict(), "token": token}

    def keys(self, *, tenant: str | None, revoked: bool) -> list[dict[str, Any]]:
        records = KeyStore(self.home.janus.ledger).list(tenant=tenant, revoked=revoked)
        return [record.as_dict() for record in records]

    def revoke_key(self, key: str, *, tenant: str | None) -> dict[str, Any]:
        record = KeyStore(self.home.janus.ledger).revoke(key, tenant=tenant)
        self._key_event(record, "auth.key.revoked", {"key_id": record.id})
        return record.as_dict()

    def _key_event(self, record: KeyRecord, type_: str, payload: dict[str, Any]) -> None:
        self.home.janus.events.append(
            tenant=record.tenant, actor="cli", type=type_, subject=record.prefix, payload=payload
        )
