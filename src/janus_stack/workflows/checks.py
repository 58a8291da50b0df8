"""Static checks of a workflow, so a broken file fails before any step runs.

:func:`check_workflow` reports unknown agents and tools, backward jumps
(unbounded loops), unreachable steps, undeclared inputs and references to
steps that do not run before, each naming the step, file and line. It walks
the steps of a :class:`~janus_stack.workflows.spec.WorkflowSpec` by where
they sit (:func:`place`), since whether a reference is valid depends on
the loops and parallel branches around it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from janus_stack.agents.registry import AgentRegistry
from janus_stack.agents.sourcefile import Problem, SourceFile, SpecError
from janus_stack.agents.tools import Toolbox
from janus_stack.errors import JanusError, NotFoundError
from janus_stack.workflows import expressions
from janus_stack.workflows.spec import (
    END,
    AgentStep,
    AnyStep,
    BranchStep,
    HumanStep,
    LoopStep,
    ParallelStep,
    RetrieveStep,
    ToolStep,
    WorkflowSpec,
    load_workflow,
)


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
