"""``janus ask`` and ``janus memory``: answers with citations, and a topic's whole memory."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table

from janus_stack.cli._backend import open_backend
from janus_stack.cli._common import JsonFlag, print_json, stderr, stdout
from janus_stack.errors import JanusError
from janus_stack.retrieve import Filters
from janus_stack.retrieve.evidence import MAX_ROUNDS
from janus_stack.retrieve.filters import FIELDS
from janus_stack.retrieve.types import MAX_K, check_k, check_query

FilterOption = Annotated[
    list[str] | None,
    typer.Option("--filter", "-f", help=f"field=value, repeatable; fields: {', '.join(FIELDS)}."),
]
TenantOption = Annotated[str | None, typer.Option("--tenant", help="Tenant to ask.")]


def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question (up to 2,000 characters).")],
    tenant: TenantOption = None,
    filters: FilterOption = None,
    k: Annotated[int, typer.Option("--k", "-k", help=f"Hits per round, 1-{MAX_K}.")] = 8,
    rounds: Annotated[
        int,
        typer.Option("--rounds", min=1, max=MAX_ROUNDS, help="Retrieval rounds at most."),
    ] = 2,
    stream: Annotated[
        bool, typer.Option("--stream", help="Print the answer as it is produced.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Answer a question from the memory, citing the chunks it rests on."""
    text, count = check_query(question), check_k(k)
    checked = Filters.parse(filters or [])
    final: dict[str, Any] | None = None
    console, progress = stdout(), stderr()
    with open_backend(ctx) as backend:
        for event in backend.ask(text, tenant=tenant, filters=checked, k=count, rounds=rounds):
            if event.kind == "retrieval" and not as_json:
                followed = event.data["followed_entities"]
                note = f", followed {', '.join(followed)}" if followed else ""
                progress.print(
                    f"[dim]{event.data['hits']} passages in {event.data['rounds']} round(s)"
                    f"{note}[/]"
                )
            elif event.kind == "token" and stream and not as_json:
                console.print(event.data, end="")
            elif event.kind == "fallback" and not as_json:
                progress.print(
                    f"\n[yellow]the model failed ({event.data['reason']}); "
                    "what it wrote is withdrawn, the extractive answer follows[/]"
                )
            elif event.kind == "answer":
                final = event.data
    if final is None:
        raise JanusError("the answer stream ended without an answer", hint="ask again")
    if as_json:
        print_json(final)
        return
    _show_answer(final, printed=stream)


def memory(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="An entity or topic, e.g. 'Marie Curie'.")],
    tenant: TenantOption = None,
    filters: FilterOption = None,
    k: Annotated[int, typer.Option("--k", "-k", help=f"Chunks to show, 1-{MAX_K}.")] = 8,
    as_json: JsonFlag = False,
) -> None:
    """Everything the memory holds about a topic: entity, relations, chunks, documents."""
    text, count = check_query(topic), check_k(k)
    checked = Filters.parse(filters or [])
    with open_backend(ctx) as backend:
        view = backend.memory(text, tenant=tenant, filters=checked, k=count)
    if as_json:
        print_json(view)
        return
    _show_memory(view)


def _show_answer(answer: dict[str, Any], *, printed: bool) -> None:
    console = stdout()
    if printed:
        console.print()
    else:
        style = "green" if answer["found"] else "yellow"
        console.print(Panel(answer["answer"], title=answer["question"], border_style=style))
    for citation in answer["citations"]:
        document = citation["document"]
        where = f", p. {citation['page']}" if citation["page"] is not None else ""
        console.print(
            f"[bold][{citation['label']}][/] {document['title']}{where} "
            f"[dim]{document['source']} v{document['version']} · {citation['chunk_id']}[/]"
        )
    for path in answer["graph_paths"]:
        console.print(f"[dim]graph:[/] {path['text']}")
    for flag in answer["flags"]:
        console.print(f"[yellow]warning:[/] {flag}")


def _show_memory(view: dict[str, Any]) -> None:
    console = stdout()
    entity = view["entity"]
    if entity is None:
        console.print(f"no entity named {view['topic']!r}; the most relevant passages follow")
    else:
        console.print(
            f"[bold]{entity['name']}[/] ({entity['type']}), "
            f"mentioned in {entity['mentions']} chunk(s)"
        )
    if view["neighbours"]:
        table = Table(title="relations")
        for column in ("relation", "entity", "type", "supporting chunks"):
            table.add_column(column)
        for n in view["neighbours"]:
            relation = n["relation"]
            arrow = f"-[{relation}]->" if n["direction"] == "out" else f"<-[{relation}]-"
            table.add_row(arrow, n["name"], n["type"], str(len(n["chunk_ids"])))
        console.print(table)
    table = Table(title="passages", show_lines=True)
    table.add_column("document", max_width=32, overflow="fold")
    table.add_column("text", overflow="fold")
    for hit in view["chunks"]:
        table.add_row(f"{hit['document']['title']}\n[dim]{hit['chunk_id']}[/]", hit["snippet"])
    console.print(table)
    if view["documents"]:
        console.print(
            "documents: " + "; ".join(d["title"] or d["source"] for d in view["documents"])
        )
