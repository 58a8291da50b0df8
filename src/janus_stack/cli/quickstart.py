"""``janus quickstart``: a real corpus into every store, then what Janus learned and answers.

The corpus is the English Wikipedia sample that the ``gensim`` package ships
(106 articles, CC BY-SA). Ingesting all of it with entity extraction takes
a quarter of an hour on two cores, so by default a part is ingested that
shows results within a few minutes; the command prints how to add the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from janus_stack.cli._common import JsonFlag, print_json, state, stdout
from janus_stack.cli._progress import ingest_with_progress
from janus_stack.errors import ConfigError
from janus_stack.ingest.pipeline import IngestOptions
from janus_stack.ops.facts import neighbours, path_between, top_entities
from janus_stack.ops.inventory import stats
from janus_stack.retrieve.answer import Answerer

DUMP_GLOB = "test/test_data/enwiki-latest-pages-articles1.xml*.bz2"
DEFAULT_ARTICLES = 8
# About the first articles of the sample (Anarchism, Autism, Albedo, A, Alabama, Achilles,
# Abraham Lincoln, Aristotle), answered from the memory with citations.
QUESTIONS = (
    "Where was Abraham Lincoln born?",
    "When did Aristotle join Plato's Academy?",
    "What is the capital of Alabama?",
)


def sample_corpus() -> Path:
    """The Wikipedia sample dump inside the installed gensim package."""
    try:
        import gensim  # type: ignore[import-untyped]  # noqa: PLC0415 - quickstart only
    except ImportError as exc:
        raise ConfigError(
            "the sample corpus comes with the gensim package, which is not installed",
            hint="pip install gensim",
        ) from exc
    found = sorted(Path(gensim.__file__).parent.glob(DUMP_GLOB))
    if not found:
        raise ConfigError("the installed gensim package has no Wikipedia sample dump")
    return found[0]


def quickstart(
    ctx: typer.Context,
    articles: Annotated[
        int, typer.Option("--articles", min=1, help="How many articles to ingest.")
    ] = DEFAULT_ARTICLES,
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Ingest part of a real Wikipedia sample on this machine and show what Janus learned."""
    cli = state(ctx)
    tenant_name = tenant or cli.settings().tenant
    dump = sample_corpus()
    if not as_json:
        stdout().print(f"Ingesting {articles} articles of the Wikipedia sample {dump.name} …")
    with cli.janus() as janus:
        report = ingest_with_progress(
            janus,
            [dump],
            tenant=tenant_name,
            tags={"corpus": "wikipedia-sample"},
            options=IngestOptions(max_documents=articles),
            quiet=as_json,
        )
        totals = stats(janus).get(tenant_name, {})
        top = top_entities(janus, tenant_name)
        facts = neighbours(janus, tenant_name, top[0]["id"]) if top else []
        path = path_between(janus, tenant_name, top[0]["id"], top[-1]["id"]) if len(top) > 1 else []
        answerer = Answerer(janus)
        answers = [answerer.ask(q, tenant=tenant_name).as_dict() for q in QUESTIONS]
    data = {
        "corpus": str(dump),
        "ingest": report.as_dict()["summary"],
        "stats": totals,
        "top_entities": top,
        "facts": facts,
        "path": path,
        "answers": answers,
        "next": f"janus ingest {dump}",
    }
    if as_json:
        print_json(data)
    else:
        _show(data)
    if report.failed:
        raise typer.Exit(1)


def _show(data: dict[str, object]) -> None:
    console = stdout()
    totals = data["stats"]
    assert isinstance(totals, dict)
    console.print(
        "\n[bold]Memory:[/] "
        + ", ".join(f"{value} {name}" for name, value in totals.items() if value)
    )
    top = data["top_entities"]
    assert isinstance(top, list)
    if top:
        console.print(
            "[bold]Most mentioned:[/] "
            + ", ".join(f"{e['name']} ({e['type']}, {e['mentions']})" for e in top)
        )
    facts = data["facts"]
    assert isinstance(facts, list)
    for fact in facts:
        console.print(
            f"  {fact['source']} —{fact['type']}→ {fact['target']}  "
            f"[dim]({fact['support']} supporting chunks)[/]"
        )
    path = data["path"]
    if isinstance(path, list) and path:
        console.print("[bold]A path in the graph:[/] " + " → ".join(path))
    answers = data["answers"]
    assert isinstance(answers, list)
    for answer in answers:
        console.print(f"\n[bold]Q:[/] {answer['question']}\n[bold]A:[/] {answer['answer']}")
        for citation in answer["citations"]:
            console.print(
                f"   [dim][{citation['label']}] {citation['document']['title']} "
                f"· chunk {citation['chunk_id']}[/]"
            )
    console.print("\nAsk your own: janus ask 'QUESTION'   ·   janus memory 'TOPIC'")
    console.print(f"\nIngest the whole sample (re-ingesting skips what is done): {data['next']}")
