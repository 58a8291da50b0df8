"""SIGKILL during a run of agents on a real engine, then ``janus runs resume``.

The agents talk to llama.cpp's server on the tiny random GGUF. ``thinker``
must call the idempotent ``crash.effect`` tool first (``tool_choice:
required``), then answer; a tool step calls ``crash.once``, which cannot
tell a repeat; ``talker`` streams its answer through a proxy that stalls
the first stream half-way. The run is killed before the tool step's call,
after the agent's call was journaled but before its step was marked done,
and mid-stream; after the resume every step is done exactly once, every
journaled call took effect exactly once and the event log verifies — on
the SQLite and the PostgreSQL ledger.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from engines import (  # noqa: F401 - fixtures
    StallingProxy,
    crash_env,
    effects,
    llama_server_fixture,
    module_pg_ledger_fixture,
    newest_run_id,
    relational_url_fixture,
    stalling_proxy_fixture,
    step_tokens,
    tiny_model_path_fixture,
)
from typer.testing import CliRunner
from workbench import home_fixture, write  # noqa: F401 - fixtures

from conformance._llm_servers import LlamaServer
from janus_stack.cli import app

WORKFLOW = """
name: crash-engine
steps:
  - {id: think, kind: agent, agent: thinker, input: "Plan the work."}
  - {id: act, kind: tool, tool: crash.once, arguments: {label: act}}
  - {id: say, kind: agent, agent: talker, input: "{{ steps.think.output.text }}"}
"""
STEPS = {"think": 1, "act": 1, "say": 1}


@pytest.fixture
def env(
    tmp_path: Path,
    home: Path,
    relational_url: str,
    llama_server: LlamaServer,
    stalling_proxy: StallingProxy,
) -> dict[str, str]:
    thinker = {
        "name": "thinker",
        "instructions": "Record a note with crash.effect, then answer.",
        "model": {"provider": llama_server.url, "tool_choice": "required"},
        "tools": ["crash.effect"],
        "budget": {"max_steps": 2},
    }
    talker = {
        "name": "talker",
        "instructions": "Report on the plan.",
        "model": stalling_proxy.url,
        "budget": {"max_steps": 1},
    }
    for manifest in (thinker, talker):
        write(home / "agents" / f"{manifest['name']}.yaml", json.dumps(manifest))
    write(home / "crash-engine.yaml", WORKFLOW)
    (tmp_path / "kill-once").touch()
    return crash_env(tmp_path, home)


def janus(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "janus_stack", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def checked(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def audit(run_id: str, type_: str) -> list[dict[str, Any]]:
    listed = CliRunner().invoke(
        app, ["audit", "list", "--subject", f"run:{run_id}", "--type", type_, "--json"]
    )
    return list(checked(listed))


def kill_mid_stream(process: subprocess.Popen[str], proxy: StallingProxy, url: str) -> str:
    """Wait until ``say`` has streamed and stored some text, then SIGKILL the run."""
    deadline = time.monotonic() + 90
    proxy.stalled.wait(90)  # the run (and its ledger) exists once its stream stalled
    while time.monotonic() < deadline and process.poll() is None:
        run_id = newest_run_id(url)
        if run_id and step_tokens(url, run_id, "say"):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait(30)
    return newest_run_id(url)


@pytest.mark.parametrize("kill_at", ["before_step:act", "after_tool:think", "mid-stream:say"])
def test_a_run_of_agents_killed_anywhere_resumes_with_every_effect_once(
    env: dict[str, str],
    home: Path,
    tmp_path: Path,
    relational_url: str,
    stalling_proxy: StallingProxy,
    kill_at: str,
) -> None:
    env["JANUS_TEST_KILL_AT"] = kill_at
    if not kill_at.startswith("mid-stream"):
        stalling_proxy.disarm()
    process = janus(env, "run", str(home / "crash-engine.yaml"), "--json")
    if kill_at.startswith("mid-stream"):
        run_id = kill_mid_stream(process, stalling_proxy, relational_url)
        assert step_tokens(relational_url, run_id, "say")  # it died with text stored
    else:
        process.wait(120)
        run_id = newest_run_id(relational_url)
    assert process.returncode == -signal.SIGKILL, process.stderr.read() if process.stderr else ""
    cli = CliRunner()
    interrupted = checked(cli.invoke(app, ["runs", "show", run_id, "--json"]))
    assert interrupted["status"] == "running"  # its owner is gone
    assert all(s["status"] != "done" for s in interrupted["steps"] if s["key"] == "say")

    resumed = janus(env, "runs", "resume", run_id, "--json")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err + out
    final = json.loads(out)
    assert final["status"] == "done", final["error"]
    assert Counter(s["key"] for s in final["steps"] if s["status"] == "done") == STEPS
    assert all(s["output"]["mode"] == "llm" for s in final["steps"] if s["kind"] == "agent")

    shown = checked(cli.invoke(app, ["runs", "show", run_id, "--json"]))
    calls = shown["tool_calls"]
    assert Counter(c["tool"] for c in calls) == {"crash.effect": 1, "crash.once": 1}
    assert all(c["status"] == "done" for c in calls)
    done = effects(tmp_path)
    assert sorted(key for _label, key in done) == sorted(c["key"] for c in calls)  # each once
    assert [label for label, _key in done].count("act") == 1
    if kill_at == "after_tool:think":  # the replayed agent's call came from the journal
        assert [e["payload"]["step"] for e in audit(run_id, "workflow.tool.reused")] == ["think"]
        # The killed attempt's model call was paid for: it counts, beside the last attempt's.
        think = next(s for s in shown["steps"] if s["key"] == "think")
        (last,) = [e["payload"] for e in audit(run_id, "workflow.step.done")
                   if e["payload"]["step"] == "think"]  # fmt: skip
        assert think["attempts"] == 2
        assert think["prompt_tokens"] > last["prompt_tokens"] > 0
        (recovered,) = audit(run_id, "workflow.usage.recovered")
        assert (
            think["prompt_tokens"] == last["prompt_tokens"] + recovered["payload"]["prompt_tokens"]
        )
    for total in ("prompt_tokens", "completion_tokens"):
        assert shown["usage"][total] == sum(s[total] for s in shown["steps"])
    assert Counter(e["payload"]["step"] for e in audit(run_id, "workflow.step.done")) == STEPS
    verified = cli.invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
