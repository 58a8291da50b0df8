"""``janus eval``: retrieval and answer quality of the memory, measured on a dataset."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from janus_stack.cli._common import JsonFlag, print_json, state, stderr, stdout
from janus_stack.cli.search import WeightOption
from janus_stack.errors import InvalidInputError
from janus_stack.evaluate import BUILTIN, EvalReport, Evaluator, load_dataset
from janus_stack.evaluate.builtin import DESCRIPTIONS
from janus_stack.evaluate.runner import DEFAULT_DEEP, DEFAULT_MODES
from janus_stack.retrieve import FusionWeights, Retriever
from janus_stack.retrieve.types import MAX_K, check_mode


def eval_command(
    ctx: typer.Context,
    dataset: Annotated[
        str | None,
        typer.Argument(
            help=f"A built-in dataset ({', '.join(BUILTIN)}) or a folder with corpus.jsonl, "
            "queries.jsonl and qrels.tsv|qrels.jsonl."
        ),
    ] = None,
    modes: Annotated[
        str, typer.Option("--modes", help="Comma-separated: dense,keyword,graph,hybrid.")
    ] = ",".join(DEFAULT_MODES),
    k: Annotated[
        int, typer.Option("--k", "-k", help=f"Hits per search and metric cutoff, 1-{MAX_K}.")
    ] = 10,
    deep: Annotated[
        int, typer.Option("--deep", help=f"Hits for Recall@deep, 0-{MAX_K} (0 skips it).")
    ] = DEFAULT_DEEP,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Run N judged queries, spread evenly over the set."),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Tenant holding the corpus (eval-<dataset>).")
    ] = None,
    entities: Annotated[
        bool | None,
        typer.Option(
            "--entities/--no-entities",
            help="Extract entities when ingesting (default: on, off for fitz-gov).",
            show_default=False,
        ),
    ] = None,
    weights: WeightOption = None,
    qa: Annotated[
        bool, typer.Option("--qa/--no-qa", help="Also score answers when the set has them.")
    ] = True,
    details: Annotated[
        bool, typer.Option("--details", help="With --json: per-query results too.")
    ] = False,
    list_sets: Annotated[
        bool, typer.Option("--list", help="List the built-in datasets and exit.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Score dense, keyword, graph and hybrid retrieval (nDCG, recall, MRR, latency) and answers.

    The corpus is ingested once into its own tenant; re-running skips it by hash.
    """
    if list_sets:
        _list(as_json)
        return
    if dataset is None:
        raise InvalidInputError(
            "janus eval needs a DATASET", hint=f"one of {', '.join(BUILTIN)}, or a folder"
        )
    chosen = [check_mode(m).value for m in modes.split(",") if m.strip()]
    if not chosen:
        raise InvalidInputError("--modes names no mode", hint="e.g. --modes dense,hybrid")
    cli = state(ctx)
    fusion = FusionWeights.parse(weights or [], FusionWeights(rerank=cli.settings().rerank))
    data = load_dataset(dataset)
    with cli.janus() as janus:
        evaluator = Evaluator(
            janus,
            data,
            tenant=tenant,
            k=k,
            deep=deep,
            entities=entities,
            retriever=Retriever(janus, weights=fusion),
        )
        with _progress(as_json) as progress:
            bars: dict[str, Any] = {}

            def ingested(kind: str, amount: int) -> None:
                if kind in ("chunk", "document"):
                    key = f"ingest {kind}s"
                    if key not in bars:
                        bars[key] = progress.add_task(key, total=None)
                    progress.advance(bars[key], amount)

            def advance(stage: str, done: int, total: int) -> None:
                if stage not in bars:
                    bars[stage] = progress.add_task(stage, total=total)
                progress.update(bars[stage], completed=done)

            report = evaluator.run(
                chosen,
                limit=limit,
                qa=qa,
                progress=advance,
                ingest_progress=ingested,
                details=details,
            )
    if as_json:
        print_json(report.as_dict(details=details))
        return
    _show(report)


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description:>16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr(),
        disable=quiet,
        transient=True,
    )


def _list(as_json: bool) -> None:
    if as_json:
        print_json({"builtin": DESCRIPTIONS})
        return
    for name, text in DESCRIPTIONS.items():
        stdout().print(f"[bold]{name}[/]  {text}")


def _fmt(value: float | None, scale: float = 100.0, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * scale:.{digits}f}"


def _show(report: EvalReport) -> None:
    console = stdout()
    k, deep = report.k, report.deep
    ingest = report.ingest
    console.print(
        f"[bold]{report.dataset}[/] — {report.description}\n"
        f"tenant {report.tenant}: {report.documents} documents "
        f"({ingest.get('ingested', 0)} files ingested, {ingest.get('unchanged', 0)} unchanged), "
        f"{report.entities} entities; {report.evaluated} of {report.judged} judged queries "
        f"({report.queries} in the set)"
    )
    table = Table(title=f"Retrieval (by document, k={k}; metrics in %)")
    for column in (
        "mode",
        "queries",
        f"nDCG@{k}",
        f"R@{k}",
        f"R@{deep}" if deep else "R@deep",
        f"MRR@{k}",
        "mean ms",
        "p95 ms",
    ):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for row in report.modes:
        if row.note:
            table.add_row(row.mode, "—", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a")
            continue
        table.add_row(
            row.mode,
            str(row.queries),
            _fmt(row.ndcg),
            _fmt(row.recall),
            _fmt(row.recall_deep),
            _fmt(row.mrr),
            _fmt(row.latency_mean_ms, 1, 0),
            _fmt(row.latency_p95_ms, 1, 0),
        )
    console.print(table)
    for row in report.modes:
        if row.note:
            console.print(f"[dim]{row.mode}: {row.note}[/]")
    if report.qa is not None:
        qa = report.qa
        table = Table(title="Answers (extractive unless a model is configured; in %)")
        for column in (
            "questions",
            "found",
            "EM",
            "F1",
            "has answer",
            "cite P",
            "all docs",
            "mean ms",
            "p95 ms",
        ):
            table.add_column(column, justify="right")
        table.add_row(
            str(qa.questions),
            _fmt(qa.found),
            _fmt(qa.exact_match),
            _fmt(qa.f1),
            _fmt(qa.contains),
            _fmt(qa.citation_precision),
            f"{_fmt(qa.supporting_retrieved)} ({qa.multi_hop})" if qa.multi_hop else "n/a",
            _fmt(qa.latency_mean_ms, 1, 0),
            _fmt(qa.latency_p95_ms, 1, 0),
        )
        console.print(table)
        console.print(
            "[dim]has answer: a reference answer occurs in the answer text; cite P: cited "
            "chunks holding evidence; all docs: multi-hop questions whose supporting documents "
            "were all retrieved (how many)[/]"
        )
    console.print(f"[dim]{report.seconds:.0f} s[/]")
