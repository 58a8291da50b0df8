"""The workflows a process can run by name: the files of its workflow directories.

``janus workflows list`` reads ``JANUS_HOME/workflows`` (plus
``--workflows-dir``); ``GET /v1/workflows`` reads the server's directories
(``janus serve --workflows-dir``). Both describe each file the same way, an
invalid one with its problems rather than being left out, so a user sees why
a name they expected cannot run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from janus_stack.agents.registry import AgentRegistry
from janus_stack.agents.sourcefile import SpecError
from janus_stack.agents.tools import Toolbox
from janus_stack.workflows.checks import check_workflow
from janus_stack.workflows.spec import load_workflow

WORKFLOW_SUFFIXES = (".yaml", ".yml", ".json")


def workflow_files(directories: Sequence[Path]) -> list[Path]:
    """Workflow files, directory by directory in the order given, by name within each."""
    found: list[Path] = []
    for directory in directories:
        if directory.is_dir():
            found.extend(
                path
                for path in sorted(directory.iterdir())
                if path.suffix in WORKFLOW_SUFFIXES and path.is_file()
            )
    return found


def describe_workflows(
    directories: Sequence[Path], registry: AgentRegistry, toolbox: Toolbox
) -> list[dict[str, Any]]:
    """One entry per file: name, description, inputs, step count, and its problems."""
    described = []
    for path in workflow_files(directories):
        entry: dict[str, Any] = {
            "name": path.stem,
            "file": path.name,
            "description": "",
            "inputs": [],
            "steps": 0,
        }
        try:
            source, spec = load_workflow(path)
        except SpecError as exc:
            problems = exc.problems
        else:
            entry.update(
                name=spec.name,
                description=spec.description,
                inputs=list(spec.inputs),
                steps=len(spec.steps),
            )
            problems = check_workflow(source, spec, registry, toolbox)
        entry["valid"] = not problems
        entry["problems"] = [problem.as_dict() for problem in problems]
        described.append(entry)
    return described
