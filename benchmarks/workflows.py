"""Workflow engine overhead and resume time, on the embedded ledger (SQLite).

* ``overhead (inline)``: a run of N no-op tool steps (default 200) executed
  by the engine in this thread (no queue hop) vs. calling the same function
  N times in a loop. The difference per step is what durability costs. The
  no-op is an ordinary tool (not idempotent, may have side effects), so
  every step takes the full durable path: the step row, the journal row and
  their events committed *before* the tool runs, the journaled result
  committed after it, then the step's outcome, the run's totals and their
  events in one more transaction — three commits per step, each event
  appended in the transaction of the state change it records.
* ``overhead (amqp)``: the same for a run of M steps (default 200) started
  through the queue slot on the machine's RabbitMQ (Dramatiq): measured from
  ``Runs.start`` until the run is done, so the enqueue, the broker hop and the
  worker's claim are included and spread over the steps. Its queues are
  deleted afterwards.
* ``resume``: a run of K finished steps (default 1,000) is resumed: the
  engine loads the run, its step rows and its journal in one query each and
  replays every step (no tool runs); measured from ``execute`` to its return.

Run: ``.venv/bin/python benchmarks/workflows.py [--steps 200] [--amqp-steps 200]
[--resume-steps 1000] [--amqp-url amqp://guest:guest@127.0.0.1:5672/]``
(``--amqp-steps 0`` skips RabbitMQ). Wall and CPU seconds are both printed;
the machine is usually shared.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from janus_stack.agents import AgentRegistry, FunctionTool, Toolbox
from janus_stack.config import load_settings
from janus_stack.context import Janus
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec
from janus_stack.workflows.store import TERMINAL

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
AMQP_TIMEOUT_S = 300.0
# A short run first, as a long-lived worker would have done: lazy imports (jsonschema for
# argument checks) and SQLAlchemy's statement cache are one-off costs, not per-step ones.
WARM_UP_STEPS = 5


def noop(label: str) -> dict[str, Any]:
    """Do nothing."""
    return {"label": label}


def spec_of(steps: int) -> WorkflowSpec:
    return WorkflowSpec.model_validate(
        {
            "name": "noop",
            "steps": [
                {
                    "id": f"s{i}",
                    "kind": "tool",
                    "tool": "bench.noop",
                    "arguments": {"label": str(i)},
                }
                for i in range(steps)
            ],
        }
    )


def timed(action: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def direct(steps: int) -> tuple[float, float]:
    wall, cpu, _ = timed(lambda: [noop(str(i)) for i in range(steps)])
    return wall, cpu


@contextmanager
def service(home: Path, **urls: str) -> Iterator[Runs]:
    """A context on ``home`` (slot URLs overridden by ``urls``) with the bench tool."""
    environ = {"JANUS_HOME": str(home)}
    environ.update({f"JANUS_{slot.upper()}_URL": url for slot, url in urls.items()})
    toolbox = Toolbox.default(plugins=False)
    toolbox.add(FunctionTool.wrap("bench.noop", noop))
    registry = AgentRegistry([home / "agents"], toolbox)
    with Janus(load_settings(environ=environ, cwd=home)) as janus:
        runs = Runs(janus, registry, toolbox)
        runs.register(janus.handlers)
        try:
            yield runs
        finally:
            runs.engine.close()


def print_overhead(label: str, steps: int, wall: float, cpu: float) -> None:
    direct_wall, direct_cpu = direct(steps)
    print(f"overhead ({label}): {steps} no-op tool steps")
    print(f"  direct loop      {direct_wall * 1000:9.3f} ms wall")
    print(f"  engine           {wall * 1000:9.1f} ms wall, {cpu * 1000:8.1f} ms CPU")
    print(
        f"  per step         {(wall - direct_wall) / steps * 1000:9.3f} ms wall, "
        f"{(cpu - direct_cpu) / steps * 1000:8.3f} ms CPU of orchestration"
    )


def inline_overhead(runs: Runs, steps: int) -> None:
    warm_up = runs.create(spec_of(WARM_UP_STEPS), {}, tenant="default")
    assert runs.engine.execute(warm_up) == "done", runs.store.run(warm_up).error
    run_id = runs.create(spec_of(steps), {}, tenant="default")
    wall, cpu, status = timed(lambda: runs.engine.execute(run_id))
    assert status == "done", runs.store.run(run_id).error
    print_overhead("inline", steps, wall, cpu)


def resume(runs: Runs, steps: int) -> None:
    run_id = runs.create(spec_of(steps), {}, tenant="default")
    first_wall, _cpu, status = timed(lambda: runs.engine.execute(run_id))
    assert status == "done", runs.store.run(run_id).error
    runs.store.update_run(run_id, status="running", owner=None, finished_at=None)
    wall, cpu, status = timed(lambda: runs.engine.execute(run_id))
    assert status == "done", runs.store.run(run_id).error
    print(f"resume: a run of {steps} finished steps")
    print(f"  first execution  {first_wall:9.2f} s wall")
    print(
        f"  resume (replay)  {wall * 1000:9.1f} ms wall, {cpu * 1000:8.1f} ms CPU "
        f"({wall / steps * 1e6:.1f} µs per finished step)"
    )


def amqp_overhead(home: Path, steps: int, amqp_url: str) -> None:
    """One run started through Dramatiq on RabbitMQ; its own queue prefix, deleted after."""
    prefix = f"janus_bench_wf_{uuid.uuid4().hex[:8]}"
    separator = "&" if "?" in amqp_url else "?"
    with service(home, queue=f"{amqp_url}{separator}prefix={prefix}&workers=1") as runs:
        queue = runs.janus.queue
        try:
            queue.start(1)

            def run_through_the_broker(spec: WorkflowSpec) -> str:
                run_id = runs.start(spec, {}, tenant="default")
                deadline = time.monotonic() + AMQP_TIMEOUT_S
                while (status := runs.store.run(run_id).status) not in TERMINAL:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the run did not finish within {AMQP_TIMEOUT_S} s")
                    time.sleep(0.002)
                return status

            assert run_through_the_broker(spec_of(WARM_UP_STEPS)) == "done"
            spec = spec_of(steps)
            wall, cpu, status = timed(lambda: run_through_the_broker(spec))
            assert status == "done", status
            print_overhead("amqp, Dramatiq on RabbitMQ", steps, wall, cpu)
        finally:
            queue.close()
            delete_queues = getattr(queue, "delete_queues", None)
            if delete_queues is not None:
                delete_queues()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--amqp-steps", type=int, default=200)
    parser.add_argument("--resume-steps", type=int, default=1000)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    args = parser.parse_args()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} CPUs (wall figures stretch with it)")
    with tempfile.TemporaryDirectory(prefix="janus-bench-") as tmp:
        with service(Path(tmp) / "inline") as runs:
            inline_overhead(runs, args.steps)
            resume(runs, args.resume_steps)
        if args.amqp_steps > 0:
            amqp_overhead(Path(tmp) / "amqp", args.amqp_steps, args.amqp_url)


if __name__ == "__main__":
    main()
