"""Progress bars for long ingests: local stages, broker waits and uploads to a server.

Bars go to stderr, so ``--json`` output on stdout stays clean; with ``quiet``
(``--json``) they are not drawn at all.
"""

from __future__ import annotations

from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from janus_stack.cli._common import stderr
from janus_stack.context import Janus
from janus_stack.ingest.enqueue import ProjectionQueue, WaitOutcome
from janus_stack.ingest.pipeline import IngestOptions, Ingestor, IngestReport


def progress_bars(quiet: bool) -> Progress:
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
    with progress_bars(quiet) as progress:
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
    with progress_bars(quiet) as progress:
        task_bar = progress.add_task("tasks finished", total=len(work.tasks))
        version_bar = progress.add_task("documents done", total=len(work.versions))

        def update(tasks_ended: int, versions_finished: int) -> None:
            progress.update(task_bar, completed=tasks_ended)
            progress.update(version_bar, completed=versions_finished)

        return projection_queue.wait(progress=update)
