"""``janus run WORKFLOW`` and ``janus runs``: start, follow and steer durable runs.

``janus run`` validates the workflow, records the run, enqueues it and
follows it: step progress goes to stderr, streamed tokens to stdout (or,
with ``--json``, one final JSON object to stdout). With the in-process queue
the run executes on this process's worker threads; with a broker queue a
``janus worker`` executes it and this command only follows the ledger.
A killed ``janus run`` loses nothing: ``janus runs resume RUN_ID`` replays
the finished steps from the ledger and continues. With ``--server`` the
server runs it (a workflow file given here is posted as the spec) and this
command follows its server-sent events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from janus_stack.cli._backend import Update, open_backend
from janus_stack.cli._common import JsonFlag, print_json, state, stderr, stdout
from janus_stack.cli.agents import AgentsDirOption
from janus_stack.errors import InvalidInputError, JanusError
from janus_stack.workflows.store import DONE, PAUSED, RUN_STATUSES

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


def _follow(updates: Iterator[Update], *, quiet: bool) -> dict[str, Any]:
    """Show step changes (stderr) and streamed text (stdout) until the run stops; its result.

    Streamed text arrives in pieces cut by time (the engine stores what a
    step produced every 0.2 s), not at word boundaries, so the pieces are
    printed exactly as they came, nothing added between them; the report
    that follows the run starts on a new line.
    """
    progress, out = stderr(), stdout()
    for update in updates:
        if update.kind == "end":
            result: dict[str, Any] = update.data
            return result
        if quiet:
            continue
        if update.kind == "step":
            step = update.data
            who = f" ({step['agent']})" if step["agent"] else ""
            progress.print(
                f"[dim]{step['status']:>15}[/] {escape(step['key'])} "
                f"[dim]{step['kind']}{escape(who)} {step['latency_s']:.3f}s[/]"
            )
        elif update.kind == "token" and update.data:
            text = str(update.data)
            out.print(escape(text), end="", soft_wrap=True)
    raise JanusError(
        "the run's updates stopped before it did",
        hint="`janus runs show RUN_ID` shows where it stands",
    )


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
    given = _parse_inputs(inputs or [])
    with open_backend(ctx) as backend:
        started = backend.runs.start(workflow, given, tenant=tenant, agents_dir=agents_dir or [])
        if not as_json:
            stderr().print(f"run {started['id']} of {started['workflow']} started")
        result = _follow(backend.runs.follow(started["id"]), quiet=as_json)
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
    with open_backend(ctx) as backend:
        records = backend.runs.list_runs(tenant=tenant, status=status, limit=limit)
    if as_json:
        print_json(records)
        return
    table = Table(title=f"{len(records)} run(s)")
    for column in ("id", "workflow", "tenant", "status", "tokens", "cost", "created"):
        table.add_column(column, overflow="fold")
    for r in records:
        usage = r["usage"]
        table.add_row(
            r["id"],
            r["workflow"],
            r["tenant"],
            r["status"],
            str(usage["prompt_tokens"] + usage["completion_tokens"]),
            f"{usage['cost']:.6f}",
            datetime.fromisoformat(r["created_at"]).isoformat(timespec="seconds"),
        )
    stdout().print(table)


def _totals(data: dict[str, Any]) -> dict[str, Any]:
    """What the whole run spent: its accounted usage, step latency and steps by status.

    Tokens and cost are the run's own totals (what its budget was checked
    against); latency is summed over the steps, beside the run's wall time.
    """
    usage = data["usage"]
    by_status: dict[str, int] = {}
    for step in data["steps"]:
        by_status[step["status"]] = by_status.get(step["status"], 0) + 1
    return {
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "tokens": usage["prompt_tokens"] + usage["completion_tokens"],
        "cost": usage["cost"],
        "elapsed_s": usage["elapsed_s"],
        "latency_s": round(sum(step["latency_s"] for step in data["steps"]), 4),
        "steps": len(data["steps"]),
        "steps_by_status": dict(sorted(by_status.items())),
    }


@app.command("show")
def show(ctx: typer.Context, run_id: RunArg, as_json: JsonFlag = False) -> None:
    """A run with its totals, per-agent usage, steps, tool calls, feedback and streamed text."""
    with open_backend(ctx) as backend:
        data = backend.runs.show(run_id)
    data["totals"] = _totals(data)
    if as_json:
        print_json(data)
        return
    console = stdout()
    console.print(
        f"run {data['id']} ({data['workflow']}, tenant {data['tenant']}): [bold]{data['status']}[/]"
    )
    totals = data["totals"]
    statuses = ", ".join(f"{n} {status}" for status, n in totals["steps_by_status"].items())
    console.print(
        f"totals: {totals['prompt_tokens']} tokens in, {totals['completion_tokens']} out, "
        f"cost {totals['cost']:.6f}, {totals['elapsed_s']:.3f}s wall, "
        f"{totals['latency_s']:.3f}s in steps; {totals['steps']} steps"
        + (f" ({statuses})" if statuses else "")
    )
    if data["agents"]:
        agents = Table(title="per agent")
        for column in ("agent", "steps", "tokens in", "tokens out", "cost", "latency"):
            agents.add_column(column, overflow="fold")
        for row in data["agents"]:
            agents.add_row(
                row["agent"],
                str(row["steps"]),
                str(row["prompt_tokens"]),
                str(row["completion_tokens"]),
                f"{row['cost']:.6f}",
                f"{row['latency_s']:.3f}s",
            )
        console.print(agents)
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
    with open_backend(ctx) as backend:
        if action == "feedback":
            record = backend.runs.feedback(run_id, text)
        else:
            record = backend.runs.steer(run_id, action)
    if as_json:
        print_json(record)
    else:
        stdout().print(f"run {record['id']}: {action} recorded (status {record['status']})")


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
    rerun_interrupted: Annotated[
        bool,
        typer.Option(
            "--rerun-interrupted",
            help="Run again the tool calls a crash interrupted (tools that are not "
            "idempotent); check their effect first.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Continue a paused, failed or interrupted run; finished steps are not repeated."""
    with open_backend(ctx) as backend:
        record = backend.runs.resume(
            run_id, agents_dir=agents_dir or [], rerun_interrupted=rerun_interrupted
        )
        if not as_json:
            stderr().print(f"run {record['id']} resumed (segment {record['segments']})")
        result = _follow(backend.runs.follow(record["id"]), quiet=as_json)
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
