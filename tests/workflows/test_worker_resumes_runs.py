"""A ``janus worker`` at start-up continues every run a killed process left running.

Real processes, a real RabbitMQ queue (a prefix per test, deleted
afterwards) and the crash plugin of the crash tests: a run is SIGKILLed
after a tool call was journaled — in an inline ``janus run``, or in the
worker executing it from the broker — and a worker started afterwards
resumes it at once (not when the killed task's 30 s queue lease runs out):
every step and every side effect happens exactly once and the audit log
verifies. In process, :meth:`Runs.recover` leaves alone a run whose owner
is alive, here or on another host.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from engines import (  # noqa: F401 - fixtures
    crash_env,
    effects,
    module_pg_ledger_fixture,
    newest_run_id,
    relational_url_fixture,
)
from sqlalchemy import create_engine, text
from typer.testing import CliRunner
from workbench import (  # noqa: F401 - fixtures
    Calls,
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
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec
from janus_stack.workflows.store import now
from services import WorkerProcess, own_rabbitmq_queue

JANUS = [sys.executable, "-m", "janus_stack"]
GUARD = 120.0  # a guard against a hung worker, not a speed assertion

WORKFLOW = """
name: effects
steps:
  - {id: one, kind: tool, tool: crash.effect, arguments: {label: one}}
  - {id: two, kind: tool, tool: crash.effect, arguments: {label: two}}
  - {id: three, kind: tool, tool: crash.effect, arguments: {label: three}}
"""
KILL_AT = "after_tool:two"  # journaled and executed, the step not yet marked done


@pytest.fixture
def queue_url(amqp_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A RabbitMQ queue of this test only, with the default 30 s task lease."""
    with own_rabbitmq_queue(amqp_url, monkeypatch) as url:
        yield url


@pytest.fixture
def env(queue_url: str, tmp_path: Path, home: Path, relational_url: str) -> dict[str, str]:
    """A child's environment: the crash plugin, this test's queue and ledger, armed once."""
    (tmp_path / "kill-once").touch()
    variables = crash_env(tmp_path, home)
    variables["JANUS_TEST_KILL_AT"] = KILL_AT
    return variables


def run_status(relational_url: str, run_id: str) -> str:
    """The run's status, read from the ledger (a worker owns JANUS_HOME meanwhile)."""
    engine = create_engine(relational_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT status FROM workflow_runs WHERE id = :r"), {"r": run_id}
            ).one()
            return str(row[0])
    finally:
        engine.dispose()


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def checked(args: list[str]) -> Any:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def check_exactly_once(run_id: str, tmp_path: Path) -> None:
    """Every step done once, every effect once, every call executed once; the log verifies."""
    shown = checked(["runs", "show", run_id, "--json"])
    assert shown["status"] == "done", shown
    assert sorted(s["key"] for s in shown["steps"] if s["status"] == "done") == [
        "one",
        "three",
        "two",
    ]
    assert Counter(label for label, _key in effects(tmp_path)) == {"one": 1, "two": 1, "three": 1}
    assert all(c["status"] == "done" and c["executions"] == 1 for c in shown["tool_calls"])
    done = checked(
        ["audit", "list", "--subject", f"run:{run_id}", "--type", "workflow.step.done", "--json"]
    )
    assert Counter(e["payload"]["step"] for e in done) == {"one": 1, "two": 1, "three": 1}
    resumed = checked(
        ["audit", "list", "--subject", f"run:{run_id}", "--type", "workflow.run.resumed", "--json"]
    )
    assert [e["actor"] for e in resumed] == ["worker"]
    verified = CliRunner().invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output


def test_a_worker_resumes_a_run_killed_in_an_inline_janus_run(
    env: dict[str, str], home: Path, tmp_path: Path, relational_url: str
) -> None:
    workflow = write(home / "effects.yaml", WORKFLOW)
    killed = subprocess.run(
        [*JANUS, "--queue-url", "inline://", "run", str(workflow)],
        env=env,
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_id = newest_run_id(relational_url)
    assert run_status(relational_url, run_id) == "running"  # its owner is gone

    started = WorkerProcess("--workers", "1", env=env)
    try:
        assert started.started(GUARD)["resumed_runs"] == [run_id]
        wait_for(lambda: run_status(relational_url, run_id) == "done", "the resumed run")
        code, _out, err = started.terminate(GUARD)
        assert code == 0, err
    finally:
        started.kill()
    check_exactly_once(run_id, tmp_path)


def killed_while_followed(worker: WorkerProcess, follower: subprocess.Popen[str]) -> bool:
    """Whether the crash plugin SIGKILLed ``worker``; fails at once, with what both printed,
    if the ``janus run`` following the run ends first (the run never reached the kill)."""
    deadline = time.monotonic() + GUARD
    while worker.process.poll() is None and time.monotonic() < deadline:
        if follower.poll() is not None:
            out, err = follower.communicate()
            worker.process.kill()
            _out, log = worker.process.communicate(timeout=10)
            pytest.fail(
                f"`janus run` ended first ({follower.returncode}): {out}{err}\n"
                f"the worker's log:\n{log[-6000:]}"
            )
        time.sleep(0.1)
    return worker.killed(max(deadline - time.monotonic(), 1.0))


def test_a_worker_resumes_a_run_another_worker_was_killed_in(
    env: dict[str, str], home: Path, tmp_path: Path, relational_url: str
) -> None:
    workflow = write(home / "effects.yaml", WORKFLOW)
    first = WorkerProcess("--workers", "1", env=env)
    second: WorkerProcess | None = None
    follower = subprocess.Popen(
        [*JANUS, "run", str(workflow), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.started(GUARD)["resumed_runs"] == []
        assert killed_while_followed(first, follower)
        run_id = newest_run_id(relational_url)
        assert run_status(relational_url, run_id) == "running"

        second = WorkerProcess("--workers", "1", env=env)
        assert second.started(GUARD)["resumed_runs"] == [run_id]
        out, err = follower.communicate(timeout=GUARD)  # `janus run` followed it through
        assert follower.returncode == 0, err
        assert json.loads(out)["status"] == "done"
        code, _out, err = second.terminate(GUARD)
        assert code == 0, err
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate(timeout=10)
        first.kill()
        if second is not None:
            second.kill()
    check_exactly_once(run_id, tmp_path)


def dead_owner() -> str:
    """An owner id naming a process of this host that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return f"{socket.gethostname()}:{child.pid}:0000"


def test_recover_takes_only_runs_whose_owner_is_gone(
    runs: Runs, workflow: Callable[[str], WorkflowSpec], calls: Calls
) -> None:
    spec = workflow("""
        name: one-step
        steps:
          - {id: only, kind: tool, tool: test.effect, arguments: {label: only}}
    """)
    lease = now() + timedelta(seconds=60)
    here = runs.create(spec, {}, tenant="default")  # owned by this live process
    assert runs.store.claim(here, f"{socket.gethostname()}:{os.getpid()}:beef", 60) is not None
    elsewhere = runs.create(spec, {}, tenant="default")  # a live lease on another host
    runs.store.update_run(elsewhere, status="running", owner="other-host:1:cafe", lease_until=lease)
    gone = runs.create(spec, {}, tenant="default")
    runs.store.update_run(gone, status="running", owner=dead_owner(), lease_until=lease)

    recovered = runs.recover()
    assert [r.id for r in recovered] == [gone]
    assert recovered[0].status == "queued" and recovered[0].segments == 1
    assert runs.store.run(here).status == runs.store.run(elsewhere).status == "running"
    assert runs.recover() == []  # queued now: nothing left to take

    assert runs.engine.execute(gone) == "done"
    assert [c["label"] for c in calls.seen] == ["only"]
    (task,) = runs.janus.queue.list(name="workflow.run")  # only the recovered one was enqueued
    assert task.payload == {"run_id": gone}
