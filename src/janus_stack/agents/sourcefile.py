"""YAML/JSON files whose validation errors name the file, the line and the field.

PyYAML's composer keeps a mark (line, column) on every node; this module
builds the plain data *and* a map from each value's path (``("tools", 2)``)
to its line, so a pydantic error located at ``budget.max_steps`` becomes
``agents/researcher.yaml:14: budget.max_steps: ...``. JSON is a subset of
YAML 1.2 for every document Janus reads, so one loader serves both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml  # type: ignore[import-untyped]  # types-PyYAML is not a dependency
from pydantic import BaseModel, ValidationError

from janus_stack.errors import InvalidInputError

Path_ = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)
MAX_FILE_BYTES = 1_000_000


class SpecError(InvalidInputError):
    """A manifest or workflow file is invalid; ``problems`` lists every finding."""

    def __init__(self, problems: Sequence[Problem], *, hint: str | None = None) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems), hint=hint)


@dataclass(frozen=True)
class Problem:
    """One finding: where (file, line, dotted field or step) and what."""

    file: str
    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        place = f"{self.file}:{self.line}" if self.line is not None else self.file
        return (
            f"{place}: {self.where}: {self.message}" if self.where else f"{place}: {self.message}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.where, "message": self.message}


@dataclass
class SourceFile:
    """Parsed data plus the line of every value (1-based)."""

    path: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, where: Sequence[str | int]) -> int | None:
        """The line of ``where``, or of its nearest ancestor that has one."""
        key = tuple(where)
        while True:
            if key in self.lines:
                return self.lines[key]
            if not key:
                return None
            key = key[:-1]

    def problem(self, where: Sequence[str | int], message: str) -> Problem:
        dotted = ".".join(str(part) for part in where)
        return Problem(self.path, self.line_of(where), dotted, message)

    def validate(self, model: type[M]) -> M:
        """``model`` built from the data; every pydantic error becomes a located Problem."""
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                loc = _clean_loc(self.data, error["loc"])
                message = error["msg"]
                if error["type"] == "extra_forbidden":
                    message = "unknown field"
                elif error["type"] == "missing":
                    message = "field required"
                problems.append(self.problem(loc, message))
            raise SpecError(problems) from None


def _clean_loc(data: Any, loc: Sequence[Any]) -> list[str | int]:
    """A pydantic location as a path into ``data``: union tags (``"loop"``, a class or
    validator name) are not fields of the file, so they are dropped."""
    path: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict):
            if part in current:
                path.append(part)
                current = current[part]
            elif current.get("kind") == part or (
                isinstance(part, str) and (part[:1].isupper() or part.startswith("function-"))
            ):
                continue
            else:
                path.append(part)
                current = None
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
        elif isinstance(part, str) and (part[:1].isupper() or part.startswith("function-")):
            continue
        else:
            path.append(part)
            current = None
    return path


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines)


def parse_text(text: str, path: str) -> SourceFile:
    """Parse YAML (or JSON) text; a syntax error names the line and column."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        reason = exc.problem or exc.context or "syntax error"
        raise SpecError([Problem(path, line, "", f"not valid YAML/JSON: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(path, None, "", f"not valid YAML/JSON: {exc}")]) from None
    lines: dict[Path_, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return SourceFile(path, data, lines)


def read_file(path: Path) -> SourceFile:
    """Read and parse ``path``; unreadable or oversized files are a located SpecError."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SpecError(
                [Problem(str(path), None, "", f"{size} bytes; the limit is {MAX_FILE_BYTES}")]
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([Problem(str(path), None, "", f"cannot be read: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise SpecError([Problem(str(path), None, "", f"not UTF-8: {exc.reason}")]) from exc
    return parse_text(text, str(path))
