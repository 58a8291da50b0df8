"""``janus run WORKFLOW`` and ``janus runs``: start, follow and steer durable runs.

``janus run`` validates the workflow, records the run, enqueues it and
follows it: step progress goes to stderr, streamed tokens to stdout (or,
with ``--json``, one final JSON object to stdout). With the in-process queue
the run executes on this process's worker threads; with a broker queue a
``janus worker`` executes it and this command only follows the ledger.
A killed ``janus run`` loses nothing: ``janus runs resume RUN_ID`` replays
the finished steps from the ledger and continues.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from janus_stack.agents import PriceTable
from janus_stack.cli._common import JsonFlag, print_json, state, stderr, stdout
from janus_stack.cli.agents import AgentsDirOption, workbench
from janus_stack.config import Settings
from janus_stack.context import Janus
from janus_stack.errors import InvalidInputError
from janus_stack.workflows.hooks import HookChain, entry_point_hooks
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import find_workflow, validate_file
from janus_stack.workflows.store import DONE, PAUSED, QUEUED, RUN_STATUSES, RUNNING

POLL_SECONDS = 0.1
TenantOption = Annotated[str | None, typer.Option("--tenant", help="Tenant of the run.")]

app = typer.Typer(help="Durable workflow runs: list, show, pause, resume, cancel, feedback.")


def _parse_inputs(values: list[str]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--input {value!r} must be written key=value")
        inputs[key.strip()] = text
    return inputs


def workflow_runs(janus: Janus, settings: Settings, agents_dir: list[Path] | None) -> Runs:
    """The run service, its task registered on ``janus.handlers`` (``janus worker`` too)."""
    registry, toolbox = workbench(settings, agents_dir)
    runs = Runs(
        janus,
        registry,
        toolbox,
        prices=PriceTable.load(settings.home / "prices.toml"),
        hooks=HookChain(entry_point_hooks()),
    )
    runs.register(janus.handlers)
    return runs


def _follow(janus: Janus, runs: Runs, run_id: str, *, quiet: bool) -> dict[str, Any]:
    """Execute (inline queue) or watch (broker queue) until the run stops; return its record."""
    queue = janus.queue
    inline = janus.settings.slot_url("queue").scheme == "inline"
    if inline:
        queue.start(1)
    seen: dict[str, str] = {}
    last_token = 0
    progress, out = stderr(), stdout()
    try:
        while True:
            run = runs.store.run(run_id)
            if not quiet:
                for key, record in runs.store.steps(run_id).items():
                    if seen.get(key) != record.status:
                        seen[key] = record.status
                        who = f" ({record.agent})" if record.agent else ""
                        progress.print(
                            f"[dim]{record.status:>15}[/] {escape(key)} "
                            f"[dim]{record.kind}{escape(who)} {record.latency_s:.3f}s[/]"
                        )
                for token_id, _key, text in runs.store.tokens(run_id, last_token):
                    last_token = token_id
                    out.print(escape(text), end="\n" if text.endswith("\n") else " ")
            if run.status not in (QUEUED, RUNNING):
                break
            time.sleep(POLL_SECONDS)
    finally:
        if inline:
            queue.stop()
    final = runs.store.run(run_id)
    result: dict[str, Any] = final.as_dict()
    result["steps"] = [s.as_dict() for s in runs.store.steps(run_id).values()]
    return result


def _report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
    else:
        console = stdout()
        console.print()
        usage = result["usage"]
        console.print(
            f"run {result['id']}: [bold]{result['status']}[/] "
            f"({len(result['steps'])} steps, {usage['prompt_tokens']}+"
            f"{usage['completion_tokens']} tokens, cost {usage['cost']:.6f})"
        )
        if result["status"] == PAUSED:
            where = result["waiting_for"] or "a pause request"
            console.print(
                f"paused at {escape(where)}: answer with `janus runs feedback {result['id']} "
                f"TEXT`, then `janus runs resume {result['id']}`"
            )
        elif result["error"]:
            console.print(f"[red]{escape(result['error'])}[/]")
        elif result["output"] is not None:
            console.print(
                escape(json.dumps(result["output"], ensure_ascii=False, indent=2)), soft_wrap=True
            )
    if result["status"] not in (DONE, PAUSED):
        raise typer.Exit(1)


def run(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="A workflow file, or a name in JANUS_HOME.")],
    inputs: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="key=value, repeatable.")
    ] = None,
    tenant: TenantOption = None,
    agents_dir: AgentsDirOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a workflow durably, streaming progress and tokens. Exit 1 unless done or paused."""
    settings = state(ctx).settings()
    registry, toolbox = workbench(settings, agents_dir)
    spec = validate_file(find_workflow(workflow, settings.home), registry, toolbox)
    given = _parse_inputs(inputs or [])
    with Janus(settings) as janus:
        runs = workflow_runs(janus, settings, agents_dir)
        run_id = runs.start(spec, given, tenant=tenant or settings.tenant)
        if not as_json:
            stderr().print(f"run {run_id} of {spec.name} started")
        result = _follow(janus, runs, run_id, quiet=as_json)
    _report(result, as_json)


RunArg = Annotated[str, typer.Argument(help="Run id (or a unique prefix of 4+ characters).")]


@app.command("list")
def list_runs(
    ctx: typer.Context,
    tenant: TenantOption = None,
    status: Annotated[
        str | None, typer.Option("--status", help=f"One of {', '.join(RUN_STATUSES)}.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Runs, newest first."""
    with state(ctx).janus() as janus:
        from janus_stack.workflows.store import RunStore  # noqa: PLC0415

        records = RunStore(janus.ledger).runs(tenant=tenant, status=status, limit=limit)
    if as_json:
        print_json([r.as_dict() for r in records])
        return
    table = Table(title=f"{len(records)} run(s)")
    for column in ("id", "workflow", "tenant", "status", "tokens", "cost", "created"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(
            r.id,
            r.workflow,
            r.tenant,
            r.status,
            str(r.prompt_tokens + r.completion_tokens),
            f"{r.cost:.6f}",
            r.created_at.isoformat(timespec="seconds"),
        )
    stdout().print(table)


@app.command("show")
def show(ctx: typer.Context, run_id: RunArg, as_json: JsonFlag = False) -> None:
    """A run with its steps, tool calls, feedback and streamed text."""
    with state(ctx).janus() as janus:
        from janus_stack.workflows.store import RunStore  # noqa: PLC0415

        store = RunStore(janus.ledger)
        record = store.find(run_id)
        data = record.as_dict()
        data["steps"] = [s.as_dict() for s in store.steps(record.id).values()]
        data["tool_calls"] = store.calls(record.id)
        data["feedback"] = store.feedback(record.id)
        data["tokens"] = "".join(t for _i, _k, t in store.tokens(record.id, 0, 100_000))
    if as_json:
        print_json(data)
        return
    console = stdout()
    console.print(
        f"run {data['id']} ({data['workflow']}, tenant {data['tenant']}): [bold]{data['status']}[/]"
    )
    table = Table()
    for column in ("step", "kind", "agent", "status", "tokens", "cost", "latency"):
        table.add_column(column, overflow="fold")
    for s in data["steps"]:
        table.add_row(
            s["key"],
            s["kind"],
            s["agent"] or "",
            s["status"] + (f" (cache {s['cache']})" if s.get("cache") else ""),
            str(s["prompt_tokens"] + s["completion_tokens"]),
            f"{s['cost']:.6f}",
            f"{s['latency_s']:.3f}s",
        )
    console.print(table)
    for call in data["tool_calls"]:
        console.print(
            f"[dim]tool[/] {call['tool']} at {call['step']}: {call['status']} "
            f"(executed {call['executions']}x)"
        )
    for note in data["feedback"]:
        console.print(f"[dim]feedback[/] {escape(note['text'])}")
    if data["error"]:
        console.print(f"[red]{escape(data['error'])}[/]")


def _steer(ctx: typer.Context, run_id: str, action: str, as_json: bool, text: str = "") -> None:
    settings = state(ctx).settings()
    with Janus(settings) as janus:
        runs = workflow_runs(janus, settings, None)
        if action == "pause":
            record = runs.pause(run_id)
        elif action == "cancel":
            record = runs.cancel(run_id)
        else:
            record = runs.feedback(run_id, text)
    if as_json:
        print_json(record.as_dict())
    else:
        stdout().print(f"run {record.id}: {action} recorded (status {record.status})")


@app.command("pause")
def pause(ctx: typer.Context, run_id: RunArg, as_json: JsonFlag = False) -> None:
    """Pause at the next step boundary (a queued run pauses at once)."""
    _steer(ctx, run_id, "pause", as_json)


@app.command("cancel")
def cancel(ctx: typer.Context, run_id: RunArg, as_json: JsonFlag = False) -> None:
    """Cancel at the next step boundary; a cancelled run cannot resume."""
    _steer(ctx, run_id, "cancel", as_json)


@app.command("feedback")
def feedback(
    ctx: typer.Context,
    run_id: RunArg,
    text: Annotated[str, typer.Argument(help="The answer to the step the run waits for.")],
    as_json: JsonFlag = False,
) -> None:
    """Answer the human-input step a paused run waits for (or leave a note)."""
    _steer(ctx, run_id, "feedback", as_json, text)


@app.command("resume")
def resume(
    ctx: typer.Context,
    run_id: RunArg,
    agents_dir: AgentsDirOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Continue a paused, failed or interrupted run; finished steps are not repeated."""
    settings = state(ctx).settings()
    with Janus(settings) as janus:
        runs = workflow_runs(janus, settings, agents_dir)
        record = runs.resume(run_id)
        if not as_json:
            stderr().print(f"run {record.id} resumed (segment {record.segments})")
        result = _follow(janus, runs, record.id, quiet=as_json)
    _report(result, as_json)


@app.command("usage")
def usage(
    ctx: typer.Context,
    by: Annotated[str, typer.Option("--by", help="agent, tenant, workflow or run.")] = "agent",
    tenant: TenantOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Tokens, cost, steps and latency summed per agent, tenant, workflow or run."""
    if by not in ("agent", "tenant", "workflow", "run"):
        raise InvalidInputError(f"--by {by!r}: use agent, tenant, workflow or run")
    with state(ctx).janus() as janus:
        from janus_stack.workflows.store import RunStore  # noqa: PLC0415

        rows = RunStore(janus.ledger).usage(by, tenant=tenant)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"usage by {by}")
    for column in (by, "steps", "prompt_tokens", "completion_tokens", "cost", "latency_s"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            *(
                str(row[c])
                for c in (by, "steps", "prompt_tokens", "completion_tokens", "cost", "latency_s")
            )
        )
    stdout().print(table)
