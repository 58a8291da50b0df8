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

:func:`check_workflow` reports unknown agents and tools, backward jumps
(unbounded loops), unreachable steps, undeclared inputs and references to
steps that do not run before, each naming the step, file and line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from janus_stack.agents.manifest import NAME_PATTERN, Budget
from janus_stack.agents.registry import AgentRegistry
from janus_stack.agents.sourcefile import Problem, SourceFile, SpecError, read_file
from janus_stack.agents.tools import Toolbox
from janus_stack.errors import JanusError, NotFoundError
from janus_stack.workflows import expressions

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


@dataclass(frozen=True)
class Placed:
    """A step with where it sits: its path in the file, position, and enclosing blocks."""

    step: AnyStep
    path: tuple[str | int, ...]
    order: int
    loops: tuple[str, ...]  # ids of enclosing loops, outermost first
    lanes: tuple[tuple[str, str], ...]  # (parallel id, branch) of enclosing branches


def children(step: AnyStep) -> Iterator[tuple[str | int, list[AnyStep]]]:
    if isinstance(step, LoopStep):
        yield "steps", list(step.steps)
    elif isinstance(step, ParallelStep):
        for name, block in step.branches.items():
            yield name, list(block)


def place(steps: Sequence[AnyStep]) -> list[Placed]:
    """Every step in document (pre-)order with its surroundings."""
    placed: list[Placed] = []

    def walk(
        block: Sequence[AnyStep],
        path: tuple[str | int, ...],
        loops: tuple[str, ...],
        lanes: tuple[tuple[str, str], ...],
    ) -> None:
        for index, step in enumerate(block):
            here = (*path, index)
            placed.append(Placed(step, here, len(placed), loops, lanes))
            if isinstance(step, LoopStep):
                walk(step.steps, (*here, "steps"), (*loops, step.id), lanes)
            elif isinstance(step, ParallelStep):
                for name, inner in step.branches.items():
                    walk(inner, (*here, "branches", name), loops, (*lanes, (step.id, name)))

    walk(steps, ("steps",), (), ())
    return placed


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


class _Checker:
    def __init__(
        self, source: SourceFile, spec: WorkflowSpec, registry: AgentRegistry, toolbox: Toolbox
    ) -> None:
        self.source = source
        self.spec = spec
        self.registry = registry
        self.toolbox = toolbox
        self.placed = place(spec.steps)
        self.by_id = {p.step.id: p for p in self.placed}
        self.problems: list[Problem] = []

    def add(self, placed: Placed | None, where: Sequence[str | int], message: str) -> None:
        path = (*placed.path, *where) if placed is not None else tuple(where)
        text = f"step {placed.step.id!r}: {message}" if placed is not None else message
        self.problems.append(self.source.problem(path, text))

    def run(self) -> list[Problem]:
        seen: dict[str, Placed] = {}
        for placed in self.placed:
            if placed.step.id in seen:
                self.add(
                    placed,
                    ("id",),
                    "duplicate step id (also at "
                    f"line {self.source.line_of(seen[placed.step.id].path)})",
                )
            seen.setdefault(placed.step.id, placed)
            self.check_step(placed)
        self.check_block(self.spec.steps, None)
        for placed in self.placed:
            for _name, block in children(placed.step):
                self.check_block(block, placed)
        if self.spec.output is not None:
            self.check_templates(None, ("output",), self.spec.output)
        return self.problems

    def check_agent(self, placed: Placed, name: str, field: str) -> None:
        try:
            self.registry.get(name)
        except NotFoundError:
            known = ", ".join(sorted(self.registry.agents())) or "none"
            self.add(placed, (field,), f"unknown agent {name!r} (known: {known})")
        except JanusError as exc:
            self.add(placed, (field,), f"agent {name!r} has an invalid manifest: {exc}")

    def check_step(self, placed: Placed) -> None:
        step = placed.step
        if isinstance(step, AgentStep):
            self.check_agent(placed, step.agent, "agent")
            self.check_templates(placed, ("input",), step.input)
        elif isinstance(step, ToolStep):
            if step.tool not in self.toolbox:
                self.add(
                    placed,
                    ("tool",),
                    f"unknown tool {step.tool!r} (known: {', '.join(self.toolbox.names())})",
                )
            if step.agent is not None:
                self.check_agent(placed, step.agent, "agent")
            self.check_templates(placed, ("arguments",), step.arguments)
        elif isinstance(step, RetrieveStep):
            if step.agent is not None:
                self.check_agent(placed, step.agent, "agent")
            self.check_templates(placed, ("query",), step.query)
            self.check_templates(placed, ("filters",), step.filters)
        elif isinstance(step, BranchStep):
            for index, case in enumerate(step.cases):
                self.check_expression(placed, ("cases", index, "when"), case.when)
        elif isinstance(step, LoopStep) and step.until is not None:
            self.check_expression(placed, ("until",), step.until)
        elif isinstance(step, HumanStep):
            self.check_templates(placed, ("prompt",), step.prompt)

    def check_templates(
        self, placed: Placed | None, where: Sequence[str | int], value: Any
    ) -> None:
        for text in expressions.strings_in(value):
            for part in expressions.template_parts(text):
                self.check_expression(placed, where, part)

    def check_expression(
        self, placed: Placed | None, where: Sequence[str | int], source: str
    ) -> None:
        try:
            found = list(expressions.references(source))
        except expressions.ExpressionError as exc:
            self.add(placed, where, str(exc))
            return
        for root, key in found:
            if root == "inputs" and key not in self.spec.inputs:
                self.add(
                    placed,
                    where,
                    f"missing input {key!r}: declare it under inputs "
                    f"(declared: {', '.join(self.spec.inputs) or 'none'})",
                )
            elif root == "steps":
                self.check_reference(placed, where, key)

    def check_reference(self, placed: Placed | None, where: Sequence[str | int], key: str) -> None:
        target = self.by_id.get(key)
        if target is None:
            self.add(placed, where, f"references unknown step {key!r}")
            return
        if placed is None or target.order < placed.order:
            if placed is not None and self._parallel_siblings(placed, target):
                self.add(placed, where, f"references step {key!r}, which runs in parallel with it")
            return
        if target.step.id in placed.loops or set(target.loops) & set(placed.loops):
            return  # an earlier iteration's output (null in the first)
        if isinstance(placed.step, LoopStep) and placed.step.id in target.loops:
            return  # a loop's ``until`` sees its body
        self.add(placed, where, f"references step {key!r}, which runs after it")

    @staticmethod
    def _parallel_siblings(a: Placed, b: Placed) -> bool:
        lanes_a, lanes_b = dict(a.lanes), dict(b.lanes)
        return any(lanes_b.get(pid, name) != name for pid, name in lanes_a.items())

    def check_block(self, block: Sequence[AnyStep], owner: Placed | None) -> None:
        index = {step.id: i for i, step in enumerate(block)}
        successors: dict[int, set[int]] = {}
        for i, step in enumerate(block):
            placed = self.by_id[step.id]
            targets: list[tuple[tuple[str | int, ...], str]] = []
            if isinstance(step, BranchStep):
                targets += [(("cases", n, "goto"), c.goto) for n, c in enumerate(step.cases)]
                if step.otherwise is not None:
                    targets.append((("otherwise",), step.otherwise))
            if step.next is not None:
                targets.append((("next",), step.next))
            out: set[int] = set()
            for where, target in targets:
                if target == END:
                    continue
                if target not in index:
                    self.add(
                        placed,
                        where,
                        f"jumps to {target!r}, which is not a step of the "
                        "same list" + ("" if target in self.by_id else " (no such step)"),
                    )
                elif index[target] <= i:
                    self.add(
                        placed,
                        where,
                        f"unbounded loop: jumps back to {target!r}; "
                        "repeat with a loop step and its max instead",
                    )
                else:
                    out.add(index[target])
            falls_through = step.next is None and not (
                isinstance(step, BranchStep) and step.otherwise is not None
            )
            if falls_through and i + 1 < len(block):
                out.add(i + 1)
            successors[i] = out
        reached, todo = {0}, [0]
        while todo:
            for nxt in successors.get(todo.pop(), set()) - reached:
                reached.add(nxt)
                todo.append(nxt)
        for i, step in enumerate(block):
            if i not in reached:
                self.add(self.by_id[step.id], ("id",), "unreachable: no step leads here")


def check_workflow(
    source: SourceFile, spec: WorkflowSpec, registry: AgentRegistry, toolbox: Toolbox
) -> list[Problem]:
    return _Checker(source, spec, registry, toolbox).run()


def validate_file(path: Path, registry: AgentRegistry, toolbox: Toolbox) -> WorkflowSpec:
    """Load and check a workflow file; SpecError lists every problem."""
    source, spec = load_workflow(path)
    problems = check_workflow(source, spec, registry, toolbox)
    if problems:
        raise SpecError(problems)
    return spec


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
