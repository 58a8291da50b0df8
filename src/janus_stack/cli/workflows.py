"""``janus workflows validate FILE``: check a workflow before running it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from janus_stack.agents.sourcefile import Problem, SpecError
from janus_stack.cli._common import JsonFlag, print_json, state, stdout
from janus_stack.cli.agents import AgentsDirOption, show_problems, workbench
from janus_stack.workflows.spec import check_workflow, find_workflow, load_workflow

app = typer.Typer(help="Workflow files: validate.", no_args_is_help=True)


@app.command("validate")
def validate(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="A workflow file (or a name in JANUS_HOME).")],
    agents_dir: AgentsDirOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Report unknown agents/tools, unbounded loops, unreachable steps, missing inputs."""
    settings = state(ctx).settings()
    registry, toolbox = workbench(settings, agents_dir)
    path: Path = find_workflow(workflow, settings.home)
    problems: list[Problem] = []
    steps = 0
    try:
        source, spec = load_workflow(path)
        problems = check_workflow(source, spec, registry, toolbox)
        steps = len(spec.steps)
    except SpecError as exc:
        problems = exc.problems
    if as_json:
        print_json(
            {"file": str(path), "ok": not problems, "problems": [p.as_dict() for p in problems]}
        )
    elif problems:
        show_problems(problems)
    else:
        stdout().print(f"[green]ok[/]: {path} ({steps} top-level steps)")
    if problems:
        raise typer.Exit(1)
