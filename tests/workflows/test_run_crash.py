"""Crash tests: a real ``janus run`` is SIGKILLed at an exact point, then resumed.

A plugin (registered through entry points in a throw-away ``site`` folder on
PYTHONPATH) provides a side-effecting tool that appends a line to a file per
execution, and a hook that kills its own process once — before a tool call,
or after a side-effecting call is journaled but before its step is marked
done. ``janus runs resume`` must then finish every step exactly once, run
each side effect exactly once, and leave the audit log intact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from workbench import (  # noqa: F401 - fixtures
    calls_fixture,
    home_fixture,
    janus_fixture,
    registry_fixture,
    runs_fixture,
    toolbox_fixture,
    workflow_fixture,
    write,
)

from janus_stack.cli import app

PLUGIN = '''
import os, signal
from pathlib import Path

def effect(label: str) -> dict:
    """Append one line per execution: the side effect under test."""
    with open(os.environ["JANUS_TEST_EFFECTS"], "a") as handle:
        handle.write(label + "\\n")
    return {"label": label}

class Killer:
    """Kill this process once, at JANUS_TEST_KILL_AT = '<hook>:<step key>'."""

    def _maybe(self, hook, step_key):
        marker = Path(os.environ["JANUS_TEST_KILL_MARKER"])
        if os.environ.get("JANUS_TEST_KILL_AT") == f"{hook}:{step_key}" and marker.exists():
            marker.unlink()
            os.kill(os.getpid(), signal.SIGKILL)

    def before_step(self, run_id, step_key, kind):
        self._maybe("before_step", step_key)

    def after_step(self, run_id, step_key, output):
        self._maybe("after_step", step_key)

    def before_tool(self, run_id, step_key, tool, key):
        self._maybe("before_tool", step_key)

    def after_tool(self, run_id, step_key, tool, key):
        self._maybe("after_tool", step_key)
'''

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


@pytest.fixture
def env(tmp_path: Path, home: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "janus_crash_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "janus_crash_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: janus-crash-plugin\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[janus_stack.tools]\ncrash.effect = janus_crash_plugin:effect\n\n"
        "[janus_stack.workflow_hooks]\nkiller = janus_crash_plugin:Killer\n"
    )
    variables = dict(os.environ)
    variables.update(
        JANUS_HOME=str(home),
        PYTHONPATH=os.pathsep.join([str(site), variables.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        JANUS_TEST_EFFECTS=str(tmp_path / "effects.txt"),
        JANUS_TEST_KILL_MARKER=str(tmp_path / "kill-once"),
    )
    return variables


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


@pytest.mark.parametrize("kill_at", ["before_tool:twice/1/two", "after_tool:twice/1/two"])
def test_a_killed_run_resumes_with_every_step_and_effect_exactly_once(
    env: dict[str, str], home: Path, tmp_path: Path, kill_at: str
) -> None:
    workflow = write(home / "effects.yaml", WORKFLOW)
    (tmp_path / "kill-once").touch()
    env["JANUS_TEST_KILL_AT"] = kill_at
    cli = CliRunner()

    killed = janus(env, "run", str(workflow), check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (run,) = checked(cli.invoke(app, ["runs", "list", "--json"]))
    assert run["status"] == "running"  # its owner is gone

    resumed = janus(env, "runs", "resume", run["id"], "--json")
    final: dict[str, Any] = json.loads(resumed.stdout)
    assert final["status"] == "done", final
    assert sorted(s["key"] for s in final["steps"] if s["status"] == "done") == [
        "one",
        "three",
        "twice/0/two",
        "twice/1/two",
    ]

    effects = (tmp_path / "effects.txt").read_text().split()
    assert Counter(effects) == {"one": 1, "two-0": 1, "two-1": 1, "three": 1}

    shown = checked(cli.invoke(app, ["runs", "show", run["id"], "--json"]))
    assert {c["tool"] for c in shown["tool_calls"]} == {"crash.effect"}
    assert all(c["status"] == "done" for c in shown["tool_calls"])
    by_step = {c["step"]: c["executions"] for c in shown["tool_calls"]}
    # before_tool: the journal row was written, the tool had not run: it runs once on
    # resume (a second execution *attempt* of the call). after_tool: the result is reused.
    assert by_step["twice/1/two"] == (2 if kill_at.startswith("before_tool") else 1)
    assert all(n == 1 for step, n in by_step.items() if step != "twice/1/two")

    events = checked(cli.invoke(app, ["audit", "list", "--type", "workflow.step.done", "--json"]))
    assert Counter(e["payload"]["step"] for e in events) == {
        "one": 1,
        "twice/0/two": 1,
        "twice/1/two": 1,
        "three": 1,
    }
    reused = checked(cli.invoke(app, ["audit", "list", "--type", "workflow.tool.reused", "--json"]))
    assert len(reused) == (0 if kill_at.startswith("before_tool") else 1)
    verified = cli.invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
