"""A small, safe expression language for conditions and templates (never ``eval``).

Expressions use Python's syntax, parsed by :mod:`ast` and *interpreted*
here over a whitelist: literals, names (``inputs``, ``steps``, ``loop``,
``run``), ``a.b`` and ``a["b"]``/``a[0]`` lookups in the JSON data, ``and``
/ ``or`` / ``not``, comparisons (``== != < <= > >= in not in``), ``+``
and ``-`` on numbers, and the functions ``len``, ``lower``, ``contains``,
``str``, ``int``. A lookup of a missing key gives ``null`` rather than an
error, so ``steps.revise.output.text or steps.draft.output.text`` works
before ``revise`` first runs. Anything else — calls of other names,
attributes of objects, comprehensions, lambdas — is a syntax error at
validation time.

Templates are strings with ``{{ expression }}`` parts; a string that is one
whole ``{{ ... }}`` keeps the value's type (a dict stays a dict).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from janus_stack.errors import InvalidInputError

ROOTS = ("inputs", "steps", "loop", "run")
MAX_EXPRESSION_CHARS = 1000
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: bool(a == b),
    ast.NotEq: lambda a, b: bool(a != b),
    ast.Lt: lambda a, b: bool(a < b),
    ast.LtE: lambda a, b: bool(a <= b),
    ast.Gt: lambda a, b: bool(a > b),
    ast.GtE: lambda a, b: bool(a >= b),
    ast.In: lambda a, b: b is not None and a in b,
    ast.NotIn: lambda a, b: b is None or a not in b,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": lambda v: 0 if v is None else len(v),
    "lower": lambda v: "" if v is None else str(v).lower(),
    "contains": lambda hay, needle: hay is not None and needle in hay,
    "str": lambda v: "" if v is None else (v if isinstance(v, str) else json.dumps(v)),
    "int": lambda v: int(v or 0),
}
_LITERALS = {"true": True, "false": False, "null": None, "none": None}


class ExpressionError(InvalidInputError):
    """An expression is not in the language, or failed while being evaluated."""


@lru_cache(maxsize=1024)
def parse(source: str) -> ast.expr:
    """Parse and check an expression; ExpressionError says what is not allowed."""
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"expression is over {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ExpressionError(f"expression {source.strip()!r} is not valid: {exc.msg}") from None
    for node in ast.walk(tree):
        _check_node(node, source)
    return tree


def _check_node(node: ast.AST, source: str) -> None:
    allowed = (
        ast.BoolOp,
        ast.And,
        ast.Or,
        ast.UnaryOp,
        ast.Not,
        ast.USub,
        ast.Compare,
        ast.Name,
        ast.Load,
        ast.Attribute,
        ast.Subscript,
        ast.Constant,
        ast.Call,
        ast.BinOp,
        ast.Add,
        ast.Sub,
        ast.List,
        ast.Tuple,
        *_COMPARE,
    )
    if not isinstance(node, allowed):
        raise ExpressionError(f"{type(node).__name__} is not allowed in {source.strip()!r}")
    known = (*ROOTS, *_LITERALS, *_FUNCTIONS)
    if isinstance(node, ast.Name) and node.id not in known:
        raise ExpressionError(
            f"unknown name {node.id!r} in {source.strip()!r}; use {', '.join(ROOTS)}"
        )
    if isinstance(node, ast.Call) and not (
        isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords
    ):
        raise ExpressionError(f"only {', '.join(_FUNCTIONS)} may be called in {source.strip()!r}")


def references(source: str) -> Iterator[tuple[str, str]]:
    """``(root, first key)`` of every lookup: ``("steps", "draft")``, ``("inputs", "topic")``."""
    for node in ast.walk(parse(source)):
        if isinstance(node, ast.Attribute | ast.Subscript):
            base = node.value
            if isinstance(base, ast.Name) and base.id in ROOTS:
                key = _key(node)
                if isinstance(key, str):
                    yield base.id, key


def _key(node: ast.Attribute | ast.Subscript) -> object:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.slice.value if isinstance(node.slice, ast.Constant) else None


def evaluate(source: str, scope: Mapping[str, Any]) -> Any:
    return _eval(parse(source), scope)


def _eval(node: ast.expr, scope: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return _LITERALS[node.id] if node.id in _LITERALS else scope.get(node.id)
    if isinstance(node, ast.Attribute | ast.Subscript):
        base = _eval(node.value, scope)
        key = node.attr if isinstance(node, ast.Attribute) else _eval(node.slice, scope)
        return _lookup(base, key)
    if isinstance(node, ast.BoolOp):
        value: Any = None
        for part in node.values:
            value = _eval(part, scope)
            if isinstance(node.op, ast.And) and not value:
                return value
            if isinstance(node.op, ast.Or) and value:
                return value
        return value
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, scope)
        return (not operand) if isinstance(node.op, ast.Not) else -_number(operand)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, scope)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, scope)
            try:
                if not _COMPARE[type(op)](left, right):
                    return False
            except TypeError:
                return False
            left = right
        return True
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, scope), _eval(node.right, scope)
        if isinstance(left, str) and isinstance(right, str) and isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Add):
            return _number(left) + _number(right)
        return _number(left) - _number(right)
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(item, scope) for item in node.elts]
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        try:
            return _FUNCTIONS[node.func.id](*(_eval(a, scope) for a in node.args))
        except (TypeError, ValueError) as exc:
            raise ExpressionError(f"{node.func.id}(): {exc}") from None
    raise ExpressionError(f"{type(node).__name__} is not allowed")  # parse() prevents this


def _lookup(base: Any, key: Any) -> Any:
    if isinstance(base, Mapping):
        return base.get(key)
    if isinstance(base, list) and isinstance(key, int) and -len(base) <= key < len(base):
        return base[key]
    return None


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExpressionError(f"{value!r} is not a number")
    return value


def template_parts(text: str) -> list[str]:
    """The expressions inside ``{{ }}`` of a template string."""
    return [match.group(1) for match in _TEMPLATE.finditer(text)]


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """Fill every ``{{ }}`` in ``value`` (strings, and the strings inside lists and dicts)."""
    if isinstance(value, str):
        stripped = value.strip()
        parts = _TEMPLATE.findall(stripped)
        if len(parts) == 1 and stripped == "{{" + parts[0] + "}}":
            return evaluate(parts[0], scope)
        return _TEMPLATE.sub(lambda m: _as_text(evaluate(m.group(1), scope)), value)
    if isinstance(value, list):
        return [render(item, scope) for item in value]
    if isinstance(value, dict):
        return {key: render(item, scope) for key, item in value.items()}
    return value


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("text"), str):
        return str(value["text"])
    return json.dumps(value, ensure_ascii=False, default=str)


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside ``value`` (for finding the templates of a step)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
