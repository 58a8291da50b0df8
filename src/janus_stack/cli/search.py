"""``janus search``: dense, keyword, graph or hybrid search over the memory."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from janus_stack.cli._backend import open_backend
from janus_stack.cli._common import JsonFlag, print_json, stdout
from janus_stack.retrieve import Filters
from janus_stack.retrieve.filters import FIELDS
from janus_stack.retrieve.types import DEFAULT_K, MAX_K, check_k, check_mode, check_query

_SHORT = {"dense": "d", "keyword": "k", "graph": "g"}

WeightOption = Annotated[
    list[str] | None,
    typer.Option(
        "--weight",
        help="Hybrid fusion: name=number (dense, keyword, graph, rrf_k; rerank from 0 to 1 "
        "re-orders the fused top 20 by late interaction) or method=combsum|rrf; repeatable.",
    ),
]


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
    weights: WeightOption = None,
    hops: Annotated[
        int | None,
        typer.Option(
            "--hops",
            help="Graph expansion depth, 1-3 (default 2 in graph mode, 1 in hybrid).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Search the memory; every hit cites its chunk, document, version and page."""
    # Check everything that needs no store first, so bad input fails fast and clearly.
    text, chosen, count = check_query(query), check_mode(mode), check_k(k)
    checked = Filters.parse(filters or [])
    with open_backend(ctx) as backend:
        result = backend.search(
            text,
            mode=chosen,
            k=count,
            tenant=tenant,
            filters=checked,
            weights=weights or [],
            hops=hops,
        )
    if as_json:
        print_json(result)
        return
    _show(result)


def _show(result: dict[str, Any]) -> None:
    console = stdout()
    hits, mode = result["hits"], result["mode"]
    title = (
        f"{len(hits)} hits for {result['query']!r} ({mode}, tenant {result['tenant']}, "
        f"{result['took_ms']:.0f} ms)"
    )
    if result["entities"]:
        names = ", ".join(f"{e['name']} ({e['type']})" for e in result["entities"])
        title += f"\nentities: {names}"
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


def _scores(hit: dict[str, Any], mode: str) -> str:
    lines = [f"{hit['score']:.4f}"]
    if mode == "hybrid":
        lines.append(" ".join(f"{_SHORT[m]}{rank}" for m, rank in sorted(hit["ranks"].items())))
    return "\n".join(lines)


def _document(hit: dict[str, Any]) -> Text:
    document = hit["document"]
    source = document["source"] + (f"#{document['sub_id']}" if document["sub_id"] else "")
    out = Text(document["title"] or source, style="bold")
    out.append(f"\n{source} v{document['version']}", style="dim")
    where: list[str] = []
    if hit["page"] is not None:
        where.append(f"p. {hit['page']}")
    if hit["heading_path"]:
        where.append(" > ".join(hit["heading_path"]))
    if where:
        out.append("\n" + ", ".join(where), style="dim")
    out.append(f"\n{hit['chunk_id']}", style="dim")
    return out


def _text(hit: dict[str, Any]) -> Text:
    out = Text(hit["snippet"])
    for path in hit["graph_paths"]:
        chunks = sorted({c for relation in path["relations"] for c in relation["chunk_ids"]})
        support = f" (chunks {', '.join(c[:8] for c in chunks[:4])})" if chunks else ""
        out.append(f"\n↳ {path['kind']}: {path['text']}{support}", style="cyan")
    return out
