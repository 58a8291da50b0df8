"""What steers a run segment: the data its steps read, and the exceptions that end it.

``Paused`` and ``Cancelled`` are control flow, not errors: they unwind the
step tree to the engine, which records the run as paused or cancelled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class Paused(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, step_key: str | None, reason: str) -> None:
        super().__init__(reason)
        self.step_key = step_key


class Cancelled(Exception):  # noqa: N818 - control flow, not an error
    pass


class StepFailedError(Exception):
    def __init__(self, step_key: str, cause: BaseException) -> None:
        super().__init__(f"step {step_key!r} failed: {type(cause).__name__}: {cause}")
        self.step_key = step_key


@dataclass
class Scope:
    """What expressions see: the run's inputs, finished steps' outputs and the loop."""

    inputs: dict[str, Any]
    run: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    loop: dict[str, Any] = field(default_factory=dict)

    def data(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "run": self.run,
            "loop": self.loop,
            "steps": {k: {"output": v} for k, v in self.outputs.items()},
        }


def as_json(value: Any) -> Any:
    """``value`` exactly as it reads back from a JSON column, so replays see the same data."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))
