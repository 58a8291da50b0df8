"""The remote backend: the data commands through the SDK against a ``janus serve``.

Every answer is reshaped into the local backend's result (see ``_backend``).
Every failure becomes a :class:`RemoteError`, a ``JanusError``, so the CLI
prints it like any other and exits 1: an HTTP refusal (401, 403, 404, 409,
413, 422, 429...) with the server's message and hint, an unreachable server
with the URL it tried. An upload the server cannot ingest (too large, not
extractable, a bad name) fails that file only, as a local ingest does; a rate
limit is waited out a few times before it counts as a failure.

Each file is uploaded under its path as given (:func:`upload_name`), so
``a/x.md`` and ``b/x.md`` are two documents on the server, and ``janus
--server URL delete a/x.md`` finds the one it names.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from janus_stack.cli._backend import EventQuery, IngestRequest, Update
from janus_stack.cli._progress import progress_bars
from janus_stack.cli._remote_runs import RemoteRuns, refuse
from janus_stack.client import (
    BadRequestError,
    JanusAPIError,
    JanusClient,
    PayloadTooLargeError,
    RateLimitedError,
)
from janus_stack.errors import ConfigError, JanusError, NotFoundError
from janus_stack.events import MAX_QUERY_LIMIT
from janus_stack.ingest.pipeline import FileOutcome, IngestReport
from janus_stack.retrieve import Filters
from janus_stack.retrieve.types import Mode
from janus_stack.urls import resolve_references

TIMEOUT_SECONDS = 300.0  # an upload is ingested before the server answers
RATE_LIMIT_TRIES = 5
DOCUMENT_PAGE = 1000
_DOCUMENT_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class RemoteError(JanusError):
    """The server refused a request, or could not be reached."""


def resolve_key(given: str | None) -> str | None:
    """The token itself, read from ``env:NAME`` or ``file:PATH`` when given that way."""
    if given is None or not given.startswith(("env:", "file:")):
        return given
    if given.startswith("file:") and not given.startswith("file:/"):
        given = f"file:{Path(given.removeprefix('file:')).expanduser().resolve()}"
    resolved, _secrets = resolve_references(given)
    if resolved == given:
        raise ConfigError(f"--api-key {given.split(':')[0]}:... is not a readable reference")
    return resolved.strip()


def upload_name(path: Path) -> str:
    """The name a local file is uploaded (and found) under: its path as given, normalised.

    ``a/x.md`` stays ``a/x.md``, so ``b/x.md`` is another document, and
    ``./a/../x.md`` is ``x.md`` (links are not followed). A path that is
    absolute or climbs out of the working directory is taken in full without
    its root (``/srv/notes/x.md`` is ``srv/notes/x.md``): the server refuses
    ``..`` and a leading ``/``, and cut to its file name it could collide.
    """
    given = Path(os.path.normpath(path.expanduser()))
    if given.is_absolute() or given.parts[:1] == ("..",):
        full = Path(os.path.normpath(Path.cwd() / given))
        return full.relative_to(full.anchor).as_posix()
    return given.as_posix()


def check_server(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"--server {url!r} is not an http(s) URL", hint="e.g. --server http://127.0.0.1:8080"
        )
    return url.rstrip("/")


@contextmanager
def translated(url: str) -> Iterator[None]:
    """Turn the SDK's and httpx's errors into a message that names the server."""
    try:
        yield
    except JanusAPIError as exc:
        message = f"{exc.message} ({exc.status} {exc.type} from {url})"
        hint = exc.hint
        if exc.status == 401 and hint is None:
            hint = "give a valid key with --api-key or JANUS_API_KEY (`janus keys create`)"
        if isinstance(exc, RateLimitedError):
            message += f"; retry in {exc.retry_after:.0f} s"
        raise RemoteError(message, hint=hint) from None
    except httpx.TimeoutException as exc:
        raise RemoteError(f"the server at {url} did not answer in time ({exc})") from None
    except httpx.HTTPError as exc:
        raise RemoteError(
            f"cannot reach the Janus server at {url}: {exc}",
            hint="check --server (or JANUS_SERVER) and that `janus serve` runs there",
        ) from None


class RemoteBackend:
    """:class:`~janus_stack.cli._backend.Backend` over a server; open it with :meth:`connect`."""

    def __init__(self, client: JanusClient) -> None:
        self.client = client
        self._runs = RemoteRuns(client)

    @classmethod
    @contextmanager
    def connect(cls, server: str, api_key: str | None) -> Iterator[RemoteBackend]:
        url = check_server(server)
        token = resolve_key(api_key)
        with JanusClient(url, token, timeout=TIMEOUT_SECONDS) as client, translated(url):
            yield cls(client)

    @property
    def runs(self) -> RemoteRuns:
        return self._runs

    # -- documents -------------------------------------------------------------------

    def ingest(self, request: IngestRequest) -> dict[str, Any]:
        refuse("--extractor llm", request.extractor != "spacy", "the server extracts with spaCy")
        refuse("--resume", request.resume, "the server finishes interrupted work at start-up")
        refuse("--limit", request.limit is not None, "choose the files to upload instead")
        refuse("--wait", request.wait, "an upload answers once the server has ingested it")
        report = IngestReport()
        with progress_bars(request.quiet) as progress:
            bar = progress.add_task("files uploaded", total=len(request.files))
            for path in request.files:
                report.files.append(self._upload(path, request))
                progress.advance(bar)
        data = report.as_dict()
        data["resumed_versions"] = None
        return data

    def _upload(self, path: Path, request: IngestRequest) -> FileOutcome:
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = self.client.upload(
                    path,
                    name=upload_name(path),
                    tags=request.tags,
                    entities=request.entities,
                    tenant=request.tenant,
                )
            except OSError as exc:
                return FileOutcome(str(path), "failed", error=f"cannot read: {exc.strerror}")
            except (BadRequestError, PayloadTooLargeError) as exc:
                return FileOutcome(str(path), "failed", error=exc.message)
            except RateLimitedError as exc:
                if attempt >= RATE_LIMIT_TRIES:
                    raise
                time.sleep(min(exc.retry_after, 30.0))
                continue
            return FileOutcome(
                str(path),
                str(answer["status"]),
                documents=int(answer["document_count"]),
                chunks=int(answer["chunks"]),
                error=answer.get("error"),
            )

    def delete(self, target: str, *, tenant: str | None) -> list[dict[str, Any]]:
        targets = [target]
        if Path(target).is_file() or not _DOCUMENT_ID.match(target):
            name = upload_name(Path(target))
            listed = self.client.list_documents(name=name, limit=DOCUMENT_PAGE, tenant=tenant)
            targets = [row["id"] for row in listed["documents"]]
            if not targets:
                raise NotFoundError(f"the server holds no document uploaded as {name!r}")
        reports = []
        for document_id in targets:
            answer = self.client.delete_document(document_id, tenant=tenant)
            reports.append(
                {
                    "document_id": answer["id"],
                    "doc_ids_removed": answer["doc_ids_removed"],
                    "doc_ids_kept": answer["doc_ids_kept"],
                    "objects_removed": answer["objects_removed"],
                }
            )
        return reports

    def documents(
        self, *, tenant: str | None, status: str | None, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while len(rows) < limit:
            page = self.client.list_documents(
                status=status,
                limit=min(limit - len(rows), DOCUMENT_PAGE),
                offset=offset + len(rows),
                tenant=tenant,
            )["documents"]
            rows.extend(page)
            if not page:
                break
        return [
            {
                "id": row["id"],
                "name": row["name"],
                "title": row["title"],
                "source": row["name"],  # the upload's name is all the server discloses
                "sub_id": row["sub_id"],
                "status": row["status"],
                "version": row["version"],
                "doc_id": row["doc_id"],
                "chunks": row["chunks"],
            }
            for row in rows[:limit]
        ]

    def document(self, document_id: str, *, tenant: str | None) -> dict[str, Any]:
        data = self.client.get_document(document_id, chunk_limit=0, tenant=tenant)
        data.pop("chunks", None)
        for version in data["versions"]:
            version.setdefault("object_key", None)  # the server keeps its object keys to itself
        return {"id": data["id"], "name": data["name"], "source": data["name"], **data}

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
        refuse("--weight", bool(weights), "the server fuses with its own weights")
        refuse("--hops", hops is not None, "the server expands the graph with its own depth")
        return self.client.search(
            query, mode=mode.value, k=k, filters=filters.as_dict(), tenant=tenant
        )

    def ask(
        self, question: str, *, tenant: str | None, filters: Filters, k: int, rounds: int
    ) -> Iterator[Update]:
        stream = self.client.ask_stream(
            question, filters=filters.as_dict(), k=k, rounds=rounds, tenant=tenant
        )
        for event in stream:
            data = event.data["text"] if event.kind == "token" else event.data
            yield Update(event.kind, data)

    def memory(self, topic: str, *, tenant: str | None, filters: Filters, k: int) -> dict[str, Any]:
        return self.client.memory(topic, k=k, filters=filters.as_dict(), tenant=tenant)

    # -- audit -----------------------------------------------------------------------

    def events(self, query: EventQuery) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after = query.after
        while len(found) < query.limit:
            page = self.client.events(
                type=query.type,
                actor=query.actor,
                subject=query.subject,
                since=query.since.astimezone() if query.since else None,
                until=query.until.astimezone() if query.until else None,
                after=after,
                limit=min(query.limit - len(found), MAX_QUERY_LIMIT),
                tenant=query.tenant,
            )
            found.extend(page["events"])
            after = page["next_after"]
            if after is None:
                break
        return found[: query.limit]

    def verify_events(self) -> dict[str, Any]:
        return self.client.verify_events()

    # -- agents and workflows ----------------------------------------------------------

    def agents(self, agents_dir: list[Path]) -> dict[str, Any]:
        refuse("--agents-dir", bool(agents_dir), "the server reads its own agent folders")
        listed = self.client.list_agents()
        return {
            "directories": None,
            "agents": listed["agents"],
            "invalid": listed["invalid"],
            "tools": listed["tools"],
            "tool_plugin_problems": None,
        }

    def agent(self, name: str, agents_dir: list[Path]) -> dict[str, Any]:
        refuse("--agents-dir", bool(agents_dir), "the server reads its own agent folders")
        return self.client.get_agent(name)

    def workflows(self, workflows_dir: list[Path], agents_dir: list[Path]) -> dict[str, Any]:
        refuse("--workflows-dir", bool(workflows_dir), "the server reads its own folders")
        refuse("--agents-dir", bool(agents_dir), "the server reads its own agent folders")
        return {"directories": None, "workflows": self.client.list_workflows()["workflows"]}

    # -- API keys --------------------------------------------------------------------

    def create_key(self, *, tenant: str, role: str, scopes: list[str], name: str) -> dict[str, Any]:
        return self.client.create_key(role, scopes=scopes, name=name, tenant=tenant)

    def keys(self, *, tenant: str | None, revoked: bool) -> list[dict[str, Any]]:
        listed = self.client.list_keys(revoked=revoked, all_tenants=tenant is None, tenant=tenant)
        keys: list[dict[str, Any]] = listed["keys"]
        return keys

    def revoke_key(self, key: str, *, tenant: str | None) -> dict[str, Any]:
        return self.client.revoke_key(key, tenant=tenant)
