"""``janus ingest`` and ``janus delete``: documents into and out of every store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from janus_stack.cli._common import JsonFlag, print_json, state, stderr, stdout
from janus_stack.context import Janus
from janus_stack.errors import InvalidInputError
from janus_stack.ingest.documents import DocumentLedger
from janus_stack.ingest.pipeline import IngestOptions, Ingestor, IngestReport
from janus_stack.ingest.removal import delete_document
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
    as_json: JsonFlag = False,
) -> None:
    """Ingest documents; exit 1 if any file failed (the others are still ingested)."""
    cli = state(ctx)
    settings = cli.settings()
    tags = _parse_tags(tag or [])
    if not paths and not resume:
        raise InvalidInputError(
            "janus ingest needs at least one PATH", hint="or --resume to only finish old work"
        )
    files, missing = expand_paths(paths or [], recursive=recursive)
    options = IngestOptions(entities=not no_entities, max_documents=limit)
    with cli.janus() as janus:
        # A killed run leaves unfinished versions in the ledger: finish them first.
        resumed = Ingestor(janus, janus.embedder, options).resume()
        report = ingest_with_progress(
            janus,
            files,
            tenant=tenant or settings.tenant,
            tags=tags,
            options=options,
            quiet=as_json,
        )
    _show(report, missing, resumed, as_json)
    if report.failed or missing:
        raise typer.Exit(1)


def ingest_with_progress(
    janus: Janus,
    files: list[Path],
    *,
    tenant: str,
    tags: dict[str, str],
    options: IngestOptions,
    quiet: bool,
) -> IngestReport:
    """Run an ingest with Rich progress bars for files, chunks embedded and documents."""
    with _progress(quiet) as progress:
        tasks = {
            "file": progress.add_task("files", total=len(files)),
            "chunk": progress.add_task("chunks embedded", total=None),
            "document": progress.add_task("documents done", total=None),
        }

        def advance(kind: str, amount: int) -> None:
            progress.advance(tasks[kind], amount)

        return Ingestor(janus, janus.embedder, options, progress=advance).ingest(
            files, tenant=tenant, tags=tags
        )


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description:>16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr(),
        disable=quiet,
        transient=False,
    )


def _show(report: IngestReport, missing: list[str], resumed: int, as_json: bool) -> None:
    data = report.as_dict()
    data["missing"] = missing
    data["resumed_versions"] = resumed
    if as_json:
        print_json(data)
        return
    console = stdout()
    failed = report.failed
    if failed or missing:
        table = Table(title="failed")
        table.add_column("path", overflow="fold")
        table.add_column("reason", overflow="fold")
        for outcome in failed:
            table.add_row(outcome.path, outcome.error or "")
        for argument in missing:
            table.add_row(argument, "no such file, directory or match")
        console.print(table)
    summary = data["summary"]
    console.print(
        f"{summary['files']} files: {summary.get('ingested', 0)} ingested, "
        f"{summary.get('unchanged', 0)} unchanged, {summary.get('failed', 0)} failed; "
        f"{summary['documents']} documents, {summary['chunks']} new chunks"
    )


def delete(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A document ID or the path it was ingested from.")],
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Delete a document from every store, keeping what other documents still support."""
    cli = state(ctx)
    tenant_name = tenant or cli.settings().tenant
    with cli.janus() as janus:
        documents = DocumentLedger(janus.ledger)
        targets = documents.documents_of_source(tenant_name, str(Path(target).resolve()))
        reports = [
            delete_document(janus, tenant_name, document_id) for document_id in targets or [target]
        ]
    if as_json:
        print_json([report.__dict__ for report in reports])
        return
    for report in reports:
        stdout().print(
            f"deleted {report.document_id}: {len(report.doc_ids_removed)} contributions removed, "
            f"{len(report.doc_ids_kept)} kept (shared), {len(report.objects_removed)} objects"
        )
