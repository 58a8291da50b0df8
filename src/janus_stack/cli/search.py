"""``janus search``: dense, keyword, graph or hybrid search over the memory."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from janus_stack.cli._common import JsonFlag, print_json, state, stdout
from janus_stack.retrieve import Filters, FusionWeights, Hit, Retriever
from janus_stack.retrieve.filters import FIELDS
from janus_stack.retrieve.types import DEFAULT_K, MAX_K, check_k, check_mode, check_query

_SHORT = {"dense": "d", "keyword": "k", "graph": "g"}


def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for (up to 2,000 characters).")],
    mode: Annotated[
        str, typer.Option("--mode", "-m", help="dense | keyword | graph | hybrid (fused).")
    ] = "hybrid",
    k: Annotated[int, typer.Option("--k", "-k", help=f"Hits to return, 1-{MAX_K}.")] = DEFAULT_K,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant to search.")] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter", "-f", help=f"field=value, repeatable; fields: {', '.join(FIELDS)}."
        ),
    ] = None,
    weights: Annotated[
        list[str] | None,
        typer.Option(
            "--weight",
            help="Hybrid fusion weight, mode=number (dense, keyword, graph, rrf_k); repeatable.",
        ),
    ] = None,
    hops: Annotated[int, typer.Option("--hops", help="Graph expansion depth, 1-3.")] = 2,
    as_json: JsonFlag = False,
) -> None:
    """Search the memory; every hit cites its chunk, document, version and page."""
    # Check everything that needs no store first, so bad input fails fast and clearly.
    text, chosen, count = check_query(query), check_mode(mode), check_k(k)
    checked = Filters.parse(filters or [])
    fusion = FusionWeights.parse(weights or [])
    cli = state(ctx)
    with cli.janus() as janus:
        retriever = Retriever(janus, weights=fusion, hops=hops)
        started = time.perf_counter()
        hits = retriever.search(text, mode=chosen, k=count, tenant=tenant, filters=checked)
        took = (time.perf_counter() - started) * 1000
        entities = list(retriever.last_entities)
    name = tenant or cli.settings().tenant
    if as_json:
        print_json(
            {
                "query": text,
                "mode": chosen.value,
                "tenant": name,
                "k": count,
                "filters": checked.as_dict(),
                "weights": fusion.as_dict() if chosen.value == "hybrid" else None,
                "entities": [
                    {"id": e.id, "name": e.name, "type": e.type, "score": e.score} for e in entities
                ],
                "took_ms": round(took, 1),
                "hits": [hit.as_dict() for hit in hits],
            }
        )
        return
    _show(text, chosen.value, name, hits, [f"{e.name} ({e.type})" for e in entities], took)


def _show(
    query: str, mode: str, tenant: str, hits: list[Hit], entities: list[str], took: float
) -> None:
    console = stdout()
    title = f"{len(hits)} hits for {query!r} ({mode}, tenant {tenant}, {took:.0f} ms)"
    if entities:
        title += f"\nentities: {', '.join(entities)}"
    table = Table(title=title, show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("document", overflow="fold", max_width=36)
    table.add_column("text", overflow="fold")
    for position, hit in enumerate(hits, start=1):
        table.add_row(str(position), _scores(hit, mode), _document(hit), _text(hit))
    console.print(table)
    if not hits:
        console.print("no hits; try another mode or fewer filters")


def _scores(hit: Hit, mode: str) -> str:
    lines = [f"{hit.score:.4f}"]
    if mode == "hybrid":
        lines.append(" ".join(f"{_SHORT[m]}{rank}" for m, rank in sorted(hit.ranks.items())))
    return "\n".join(lines)


def _document(hit: Hit) -> Text:
    source = hit.source + (f"#{hit.sub_id}" if hit.sub_id else "")
    out = Text(hit.title or source, style="bold")
    out.append(f"\n{source} v{hit.version}", style="dim")
    where: list[Any] = []
    if hit.page is not None:
        where.append(f"p. {hit.page}")
    if hit.heading_path:
        where.append(" > ".join(hit.heading_path))
    if where:
        out.append("\n" + ", ".join(str(w) for w in where), style="dim")
    out.append(f"\n{hit.chunk_id}", style="dim")
    return out


def _text(hit: Hit) -> Text:
    out = Text(hit.snippet)
    for path in hit.paths:
        chunks = sorted({c for relation in path.relations for c in relation.chunk_ids})
        support = f" (chunks {', '.join(c[:8] for c in chunks[:4])})" if chunks else ""
        out.append(f"\n↳ {path.kind}: {path.describe()}{support}", style="cyan")
    return out
