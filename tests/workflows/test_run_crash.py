"""Crash tests: a real ``janus run`` is SIGKILLed at an exact point, then resumed.

A plugin (``engines.crash_plugin``, registered through entry points in a
throw-away ``site`` folder on PYTHONPATH) provides side-effecting tools that
append a line per effect to a file — ``crash.effect`` deduplicates by the
idempotency key (an idempotent tool), ``crash.once`` cannot — and a hook
that kills its own process once: before a tool call, after a call is
journaled but before its step is marked done, or inside the tool after its
effect. ``janus runs resume`` must then finish every step exactly once,
run each side effect exactly once, and leave the audit log intact; a call
of ``crash.once`` that a crash cut short is not repeated blindly.

Every scenario runs on the embedded SQLite ledger and on PostgreSQL.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from engines import (  # noqa: F401 - fixtures
    crash_env,
    effects,
    module_pg_ledger_fixture,
    relational_url_fixture,
)
from typer.testing import CliRunner
from workbench import home_fixture, write  # noqa: F401 - fixtures

from janus_stack.cli import app

WORKFLOW = """
name: effects
steps:
  - {id: one, kind: tool, tool: crash.effect, arguments: {label: one}}
  - id: twice
    kind: loop
    max: 2
    steps:
      - {id: two, kind: tool, tool: crash.effect, arguments: {label: "two-{{ loop.index }}"}}
  - {id: three, kind: tool, tool: crash.effect, arguments: {label: three}}
"""

ONCE = """
name: once
steps:
  - {id: pay, kind: tool, tool: crash.once, arguments: {label: pay}}
  - {id: after, kind: tool, tool: crash.effect, arguments: {label: after}}
"""


@pytest.fixture
def env(tmp_path: Path, home: Path, relational_url: str) -> dict[str, str]:
    (tmp_path / "kill-once").touch()
    return crash_env(tmp_path, home)


def janus(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "janus_stack", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


def checked(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def killed_run(env: dict[str, str], workflow: Path, kill_at: str) -> dict[str, Any]:
    """Start ``workflow`` in a child that kills itself at ``kill_at``; the run it left."""
    env["JANUS_TEST_KILL_AT"] = kill_at
    killed = janus(env, "run", str(workflow), check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (run,) = checked(CliRunner().invoke(app, ["runs", "list", "--limit", "1", "--json"]))
    assert run["status"] == "running"  # its owner is gone
    return dict(run)


def audit(run_id: str, type_: str) -> list[dict[str, Any]]:
    found = CliRunner().invoke(
        app, ["audit", "list", "--subject", f"run:{run_id}", "--type", type_, "--json"]
    )
    return list(checked(found))


def audit_verifies() -> None:
    verified = CliRunner().invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output


@pytest.mark.parametrize(
    "kill_at",
    ["before_tool:twice/1/two", "after_tool:twice/1/two", "inside:twice/1/two"],
)
def test_a_killed_run_resumes_with_every_step_and_effect_exactly_once(
    env: dict[str, str], home: Path, tmp_path: Path, kill_at: str
) -> None:
    run = killed_run(env, write(home / "effects.yaml", WORKFLOW), kill_at)

    resumed = janus(env, "runs", "resume", run["id"], "--json")
    final: dict[str, Any] = json.loads(resumed.stdout)
    assert final["status"] == "done", final
    assert sorted(s["key"] for s in final["steps"] if s["status"] == "done") == [
        "one",
        "three",
        "twice/0/two",
        "twice/1/two",
    ]
    done = effects(tmp_path)
    assert Counter(label for label, _key in done) == {"one": 1, "two-0": 1, "two-1": 1, "three": 1}

    shown = checked(CliRunner().invoke(app, ["runs", "show", run["id"], "--json"]))
    assert {c["key"] for c in shown["tool_calls"]} == {key for _label, key in done}
    assert all(c["status"] == "done" and c["executions"] == 1 for c in shown["tool_calls"])
    # Killed inside the idempotent tool, after its effect: the call is issued again with
    # the same key and deduplicates. Killed before it: it runs once, on resume. Killed
    # after it (result journaled): the result is reused, the tool is not invoked again.
    invoked = Counter(label for label, _key in effects(tmp_path, "effects.txt.calls"))
    assert invoked["two-1"] == (2 if kill_at.startswith("inside") else 1)
    assert invoked - Counter({"two-1": invoked["two-1"]}) == {"one": 1, "two-0": 1, "three": 1}

    steps_done = Counter(e["payload"]["step"] for e in audit(run["id"], "workflow.step.done"))
    assert steps_done == {"one": 1, "twice/0/two": 1, "twice/1/two": 1, "three": 1}
    reused = audit(run["id"], "workflow.tool.reused")
    assert len(reused) == (1 if kill_at.startswith("after_tool") else 0)
    audit_verifies()


def test_a_call_cut_short_in_a_tool_that_is_not_idempotent_waits_for_a_person(
    env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    run = killed_run(env, write(home / "once.yaml", ONCE), "inside:pay")
    assert [label for label, _key in effects(tmp_path)] == ["pay"]  # it took effect, unjournaled

    refused = janus(env, "runs", "resume", run["id"], "--json", check=False)
    assert refused.returncode == 1
    failed = json.loads(refused.stdout)
    assert failed["status"] == "failed"
    assert "'crash.once'" in failed["error"] and "interrupted while it executed" in failed["error"]
    assert "--rerun-interrupted" in failed["error"]
    (call,) = checked(CliRunner().invoke(app, ["runs", "show", run["id"], "--json"]))["tool_calls"]
    assert call["status"] == "interrupted" and call["executions"] == 1
    assert [label for label, _key in effects(tmp_path)] == ["pay"]  # not run again
    assert len(audit(run["id"], "workflow.tool.interrupted")) == 1

    again = janus(env, "runs", "resume", run["id"], "--json", check=False)  # still not by itself
    assert json.loads(again.stdout)["status"] == "failed"
    assert [label for label, _key in effects(tmp_path)] == ["pay"]

    # A person checked and wants it run again.
    rerun = janus(env, "runs", "resume", run["id"], "--rerun-interrupted", "--json")
    final = json.loads(rerun.stdout)
    assert final["status"] == "done", final
    assert [label for label, _key in effects(tmp_path)] == ["pay", "pay", "after"]
    calls = {
        c["step"]: c
        for c in checked(CliRunner().invoke(app, ["runs", "show", run["id"], "--json"]))[
            "tool_calls"
        ]
    }
    assert calls["pay"]["status"] == "done" and calls["pay"]["executions"] == 2
    assert Counter(e["payload"]["step"] for e in audit(run["id"], "workflow.step.done")) == {
        "pay": 1,
        "after": 1,
    }
    audit_verifies()
