"""Workflow engine overhead and resume time, on the embedded ledger (SQLite).

* ``overhead``: a run of N no-op tool steps (default 200) executed inline by
  the engine (no queue hop) vs. calling the same function N times in a
  loop. The difference per step is what durability costs: a control read,
  the step row (begin, finish), the journal row (begin, finish) and four
  hash-chained events, each its own SQLite transaction.
* ``resume``: a run of M finished steps (default 1,000) is resumed: the
  engine loads the step rows in one query and replays every one (no tool
  runs); measured from ``execute`` to its return.

Run: ``.venv/bin/python benchmarks/workflows.py [--steps 200] [--resume-steps 1000]``.
Wall and CPU seconds are both printed; the machine is usually shared.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from janus_stack.agents import AgentRegistry, FunctionTool, Toolbox
from janus_stack.config import load_settings
from janus_stack.context import Janus
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec


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


def timed(action: Any) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--resume-steps", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="janus-bench-") as home:
        os.environ["JANUS_HOME"] = home
        toolbox = Toolbox.default(plugins=False)
        toolbox.add(FunctionTool.wrap("bench.noop", noop))
        registry = AgentRegistry([Path(home) / "agents"], toolbox)
        with Janus(load_settings()) as janus:
            runs = Runs(janus, registry, toolbox)
            runs.register(janus.handlers)

            direct_wall, direct_cpu, _ = timed(lambda: [noop(str(i)) for i in range(args.steps)])
            spec = spec_of(args.steps)
            run_id = runs.create(spec, {}, tenant="default")
            wall, cpu, status = timed(lambda: runs.engine.execute(run_id))
            assert status == "done", runs.store.run(run_id).error
            per_step = (wall - direct_wall) / args.steps * 1000
            print(f"overhead: {args.steps} no-op tool steps")
            print(f"  direct loop      {direct_wall * 1000:9.3f} ms wall")
            print(f"  engine (inline)  {wall * 1000:9.1f} ms wall, {cpu * 1000:8.1f} ms CPU")
            print(
                f"  per step         {per_step:9.3f} ms wall, "
                f"{(cpu - direct_cpu) / args.steps * 1000:8.3f} ms CPU of orchestration"
            )

            big = spec_of(args.resume_steps)
            big_id = runs.create(big, {}, tenant="default")
            first_wall, _cpu, status = timed(lambda: runs.engine.execute(big_id))
            assert status == "done"
            runs.store.update_run(big_id, status="running", owner=None, finished_at=None)
            resume_wall, resume_cpu, status = timed(lambda: runs.engine.execute(big_id))
            assert status == "done"
            print(f"resume: a run of {args.resume_steps} finished steps")
            print(f"  first execution  {first_wall:9.2f} s wall")
            print(
                f"  resume (replay)  {resume_wall * 1000:9.1f} ms wall, "
                f"{resume_cpu * 1000:8.1f} ms CPU "
                f"({resume_wall / args.resume_steps * 1e6:.1f} µs per finished step)"
            )
            runs.engine.close()


if __name__ == "__main__":
    main()
