"""``janus ingest`` and ``janus delete``: documents into and out of every store.

With the in-process queue (``inline://``, the default) ``janus ingest`` runs
every stage itself behind Rich progress bars. With a broker queue it runs the
producer stages (read, store, extract, chunk) and enqueues the projection for
``janus worker``; ``--wait`` then follows the workers until they finish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
from janus_stack.ingest.enqueue import ProjectionQueue, WaitOutcome, queued_mode
from janus_stack.ingest.pipeline import IngestOptions, Ingestor, IngestReport
from janus_stack.ingest.removal import delete_document
from janus_stack.ingest.sources import expand_paths
from janus_stack.ingest.tasks import register_ingest_tasks


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
    cli = state(ctx)
    settings = cli.settings()
    tags = _parse_tags(tag or [])
    if not paths and not resume:
        raise InvalidInputError(
            "janus ingest needs at least one PATH", hint="or --resume to only finish old work"
        )
    files, missing = expand_paths(paths or [], recursive=recursive)
    options = IngestOptions(entities=not no_entities, extractor=extractor, max_documents=limit)
    outcome: WaitOutcome | None = None
    with cli.janus() as janus:
        tasks = None
        if queued_mode(janus):
            register_ingest_tasks(janus.handlers, janus)
            tasks = ProjectionQueue(janus, entities=options.entities)
        # A killed run leaves unfinished versions in the ledger: finish (or re-queue) them first.
        resumed = Ingestor(janus, janus.embedder, options, projection_queue=tasks).resume()
        report = ingest_with_progress(
            janus,
            files,
            tenant=tenant or settings.tenant,
            tags=tags,
            options=options,
            quiet=as_json,
            projection_queue=tasks,
        )
        if tasks is not None and wait:
            outcome = wait_with_progress(tasks, quiet=as_json)
        queued = None if tasks is None else {"backend": tasks.backend, **tasks.work.as_dict()}
    _show(report, missing, resumed, as_json, queued, outcome)
    if report.failed or missing or (outcome is not None and outcome.dead):
        raise typer.Exit(1)


def ingest_with_progress(
    janus: Janus,
    files: list[Path],
    *,
    tenant: str,
    tags: dict[str, str],
    options: IngestOptions,
    quiet: bool,
    projection_queue: ProjectionQueue | None = None,
) -> IngestReport:
    """Run an ingest with Rich progress bars for files, chunks embedded and documents.

    With ``projection_queue`` the bars are files read and tasks enqueued.
    """
    with _progress(quiet) as progress:
        tasks = {"file": progress.add_task("files", total=len(files))}
        if projection_queue is None:
            tasks["chunk"] = progress.add_task("chunks embedded", total=None)
            tasks["document"] = progress.add_task("documents done", total=None)
        else:
            tasks["task"] = progress.add_task("tasks enqueued", total=None)

        def advance(kind: str, amount: int) -> None:
            if kind in tasks:
                progress.advance(tasks[kind], amount)

        ingestor = Ingestor(
            janus, janus.embedder, options, progress=advance, projection_queue=projection_queue
        )
        return ingestor.ingest(files, tenant=tenant, tags=tags)


def wait_with_progress(projection_queue: ProjectionQueue, *, quiet: bool) -> WaitOutcome:
    """Follow the workers until every enqueued task is done or dead."""
    work = projection_queue.work
    if not quiet:
        stderr().print(
            f"waiting for `janus worker` to run {len(work.tasks)} tasks "
            f"({projection_queue.backend} queue); Ctrl-C stops waiting, not the work"
        )
    with _progress(quiet) as progress:
        task_bar = progress.add_task("tasks finished", total=len(work.tasks))
        version_bar = progress.add_task("documents done", total=len(work.versions))

        def update(tasks_ended: int, versions_finished: int) -> None:
            progress.update(task_bar, completed=tasks_ended)
            progress.update(version_bar, completed=versions_finished)

        return projection_queue.wait(progress=update)


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


def _show(
    report: IngestReport,
    missing: list[str],
    resumed: int,
    as_json: bool,
    queued: dict[str, Any] | None = None,
    waited: WaitOutcome | None = None,
) -> None:
    data = report.as_dict()
    data["missing"] = missing
    data["resumed_versions"] = resumed
    if queued is not None:
        data["queue"] = {**queued, "wait": None if waited is None else waited.as_dict()}
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
    if queued is not None:
        _show_queued(queued, waited)


def _show_queued(queued: dict[str, Any], outcome: WaitOutcome | None) -> None:
    console = stdout()
    console.print(
        f"enqueued {len(queued['tasks'])} tasks on the {queued['backend']} queue for "
        f"{queued['versions']} document versions ({queued['resumed_versions']} resumed)"
    )
    if outcome is None:
        if queued["tasks"]:
            console.print("`janus worker` runs them; `janus ingest --wait` follows them")
        return
    console.print(
        f"workers finished {outcome.done} tasks; {outcome.versions_finished} of "
        f"{queued['versions']} document versions done"
    )
    if outcome.dead:
        dead = ", ".join(outcome.dead)
        console.print(f"[red]{len(outcome.dead)} tasks failed for good:[/] {dead}")


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
