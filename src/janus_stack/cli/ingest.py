"""``janus ingest`` and ``janus delete``: documents into and out of every store.

With the in-process queue (``inline://``, the default) ``janus ingest`` runs
every stage itself behind Rich progress bars. With a broker queue it runs the
producer stages (read, store, extract, chunk) and enqueues the projection for
``janus worker``; ``--wait`` then follows the workers until they finish.
With ``--server`` each file is uploaded to the server, which ingests it
before it answers; a progress bar counts the uploads.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from janus_stack.cli._backend import IngestRequest, open_backend
from janus_stack.cli._common import JsonFlag, print_json, stdout
from janus_stack.errors import InvalidInputError
from janus_stack.ingest.sources import expand_paths


def _parse_tags(values: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--tag {value!r} must be written key=value")
        tags[key] = text
    return tags


def ingest(
    ctx: typer.Context,
    paths: Annotated[list[str] | None, typer.Argument(help="Files, directories or globs.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant to ingest into.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="key=value, repeatable.")] = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Descend into dirs.")
    ] = False,
    extractor: Annotated[
        str,
        typer.Option(
            "--extractor",
            help="Entity extractor: spacy, or llm (the configured model; spaCy as fallback).",
        ),
    ] = "spacy",
    no_entities: Annotated[
        bool, typer.Option("--no-entities", help="Skip entity and relation extraction.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Finish what an interrupted run left (every run does); PATH optional.",
        ),
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Max documents.")] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="With a broker queue: wait until the workers finished what was enqueued.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Ingest documents; exit 1 if any file failed (the others are still ingested).

    With a broker queue the projection is enqueued for `janus worker`; with
    --wait, exit 1 also if a task ended dead.
    """
    tags = _parse_tags(tag or [])
    if not paths and not resume:
        raise InvalidInputError(
            "janus ingest needs at least one PATH", hint="or --resume to only finish old work"
        )
    files, missing = expand_paths(paths or [], recursive=recursive)
    request = IngestRequest(
        files=files,
        tenant=tenant,
        tags=tags,
        entities=not no_entities,
        extractor=extractor,
        resume=resume,
        limit=limit,
        wait=wait,
        quiet=as_json,
    )
    with open_backend(ctx) as backend:
        result = backend.ingest(request)
    data = {"files": result["files"], "summary": result["summary"], "missing": missing}
    data.update((key, value) for key, value in result.items() if key not in data)
    _show(data, as_json)
    waited = (data.get("queue") or {}).get("wait") or {}
    if data["summary"].get("failed") or missing or waited.get("dead"):
        raise typer.Exit(1)


def _show(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(data)
        return
    console = stdout()
    failed = [outcome for outcome in data["files"] if outcome["status"] == "failed"]
    if failed or data["missing"]:
        table = Table(title="failed")
        table.add_column("path", overflow="fold")
        table.add_column("reason", overflow="fold")
        for outcome in failed:
            table.add_row(outcome["path"], outcome["error"] or "")
        for argument in data["missing"]:
            table.add_row(argument, "no such file, directory or match")
        console.print(table)
    summary = data["summary"]
    console.print(
        f"{summary['files']} files: {summary.get('ingested', 0)} ingested, "
        f"{summary.get('unchanged', 0)} unchanged, {summary.get('failed', 0)} failed; "
        f"{summary['documents']} documents, {summary['chunks']} new chunks"
    )
    if "queue" in data:
        _show_queued(data["queue"])


def _show_queued(queued: dict[str, Any]) -> None:
    console = stdout()
    console.print(
        f"enqueued {len(queued['tasks'])} tasks on the {queued['backend']} queue for "
        f"{queued['versions']} document versions ({queued['resumed_versions']} resumed)"
    )
    outcome = queued["wait"]
    if outcome is None:
        if queued["tasks"]:
            console.print("`janus worker` runs them; `janus ingest --wait` follows them")
        return
    console.print(
        f"workers finished {outcome['done']} tasks; {outcome['versions_finished']} of "
        f"{queued['versions']} document versions done"
    )
    if outcome["dead"]:
        dead = ", ".join(outcome["dead"])
        console.print(f"[red]{len(outcome['dead'])} tasks failed for good:[/] {dead}")


def delete(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A document ID or the path it was ingested from.")],
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Delete a document from every store, keeping what other documents still support."""
    with open_backend(ctx) as backend:
        reports = backend.delete(target, tenant=tenant)
    if as_json:
        print_json(reports)
        return
    for report in reports:
        stdout().print(
            f"deleted {report['document_id']}: {len(report['doc_ids_removed'])} contributions "
            f"removed, {len(report['doc_ids_kept'])} kept (shared), "
            f"{len(report['objects_removed'])} objects"
        )
