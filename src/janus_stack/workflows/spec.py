"""Workflows are data: a YAML/JSON file of steps, checked before anything runs.

    name: research
    inputs: {question: {required: true}}
    budget: {max_steps: 20}
    steps:
      - {id: research, kind: agent, agent: researcher, input: "{{ inputs.question }}"}
      - id: check
        kind: branch
        cases: [{when: "len(steps.research.output.citations) == 0", goto: give_up}]
      - {id: summarise, kind: agent, agent: summariser, input: "{{ steps.research.output }}",
         next: end}
      - {id: give_up, kind: human, prompt: "Nothing found for {{ inputs.question }}; advise?"}
    output: "{{ steps.summarise.output }}"

Step kinds: ``agent``, ``tool``, ``retrieve``, ``branch`` (first true case's
``goto``, else ``otherwise``, else the next step), ``loop`` (its ``steps``
up to ``max`` times, until ``until`` holds), ``parallel`` (``branches`` run
side by side; the output maps each branch to its last output) and ``human``
(the run pauses until ``janus runs feedback``). ``next`` jumps forward
within the same list, or ``end``s it. Jumps may only go forward: repetition
is what ``loop`` (with its required ``max``) is for.

:func:`janus_stack.workflows.checks.check_workflow` then reports what the
schema alone cannot (unknown agents and tools, unbounded loops, references
to steps that do not run before), each naming the step, file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from janus_stack.agents.manifest import NAME_PATTERN, Budget
from janus_stack.agents.sourcefile import Problem, SourceFile, SpecError, read_file
from janus_stack.errors import NotFoundError

STEP_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
MAX_LOOP = 1000
END = "end"


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=STEP_ID)
    description: str = ""
    next: str | None = None


class AgentStep(_Step):
    kind: Literal["agent"]
    agent: str
    input: Any


class ToolStep(_Step):
    kind: Literal["tool"]
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    agent: str | None = None


class RetrieveStep(_Step):
    kind: Literal["retrieve"]
    query: str
    k: int = Field(default=5, ge=1, le=50)
    mode: Literal["hybrid", "dense", "keyword", "graph"] = "hybrid"
    filters: dict[str, Any] = Field(default_factory=dict)
    agent: str | None = None


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: str
    goto: str


class BranchStep(_Step):
    kind: Literal["branch"]
    cases: list[Case] = Field(min_length=1, max_length=50)
    otherwise: str | None = None


class LoopStep(_Step):
    kind: Literal["loop"]
    max: int = Field(ge=1, le=MAX_LOOP)
    until: str | None = None
    steps: list[Step] = Field(min_length=1)


class ParallelStep(_Step):
    kind: Literal["parallel"]
    branches: dict[str, list[Step]] = Field(min_length=2, max_length=32)
    max_concurrency: int = Field(default=4, ge=1, le=32)


class HumanStep(_Step):
    kind: Literal["human"]
    prompt: str


Step = Annotated[
    AgentStep | ToolStep | RetrieveStep | BranchStep | LoopStep | ParallelStep | HumanStep,
    Field(discriminator="kind"),
]
LoopStep.model_rebuild()
ParallelStep.model_rebuild()


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    required: bool = True
    default: Any = None
    description: str = ""


class WorkflowSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    budget: Budget = Field(default_factory=Budget)
    steps: list[Step] = Field(min_length=1)
    output: Any = None

    def resolve_inputs(self, given: dict[str, Any]) -> dict[str, Any]:
        """Given inputs plus defaults; a missing required or unknown input is an error."""
        unknown = sorted(set(given) - set(self.inputs))
        if unknown:
            raise SpecError(
                [
                    Problem(
                        self.name,
                        None,
                        "inputs",
                        f"unknown input(s) {', '.join(unknown)}; declared: "
                        f"{', '.join(self.inputs) or 'none'}",
                    )
                ]
            )
        resolved: dict[str, Any] = {}
        for name, spec in self.inputs.items():
            if name in given:
                resolved[name] = given[name]
            elif spec.required and spec.default is None:
                raise SpecError(
                    [
                        Problem(
                            self.name,
                            None,
                            f"inputs.{name}",
                            f"missing input; give it with --input {name}=VALUE",
                        )
                    ]
                )
            else:
                resolved[name] = spec.default
        return resolved


AnyStep = AgentStep | ToolStep | RetrieveStep | BranchStep | LoopStep | ParallelStep | HumanStep


def load_workflow(path: Path) -> tuple[SourceFile, WorkflowSpec]:
    source = read_file(path)
    try:
        return source, source.validate(WorkflowSpec)
    except SpecError as exc:
        raise SpecError([_name_step(source, p) for p in exc.problems]) from None


def _name_step(source: SourceFile, problem: Problem) -> Problem:
    """Prefix a schema problem with the id of the step it is in, when there is one."""
    if not problem.where.startswith("steps"):
        return problem
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in problem.where.split(".")]
    node: Any = source.data
    step_id: str | None = None
    for part in parts:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            break
        if isinstance(node, dict) and isinstance(node.get("id"), str) and "kind" in node:
            step_id = node["id"]
    if step_id is None:
        return problem
    return Problem(
        problem.file, problem.line, problem.where, f"step {step_id!r}: {problem.message}"
    )


def find_workflow(name_or_path: str, home: Path) -> Path:
    """A workflow file: the path given, else ``JANUS_HOME/workflows/NAME.yaml``."""
    given = Path(name_or_path).expanduser()
    if given.is_file():
        return given
    for suffix in (".yaml", ".yml", ".json"):
        candidate = home / "workflows" / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate
    raise NotFoundError(
        f"no workflow file {name_or_path!r} (nor {home / 'workflows'}/{name_or_path}.yaml)",
        hint="give a path to a YAML/JSON workflow file",
    )
