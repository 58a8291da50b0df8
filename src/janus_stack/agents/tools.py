"""Tools: what an agent (or a workflow's tool step) may call, and the scope gate in front.

Every tool satisfies :class:`Tool`: a name, a description, a JSON Schema of
its arguments, what it touches (``access``: ``read`` or ``write`` memory, or
``none``) and ``call(context, arguments) -> dict``. The built-ins live in
:mod:`janus_stack.agents.builtin`; Python functions become tools through the
``janus_stack.tools`` entry-point group (a plain function is wrapped by
:class:`FunctionTool`); a LangChain ``BaseTool`` (a ``@tool`` function or a
subclass from any package) is adapted by :func:`from_langchain` when
``langchain-core`` is installed, and entry points may name one.

:meth:`Toolbox.invoke` is the one door: it checks that the agent lists the
tool, that the tenant (and tags) the call reaches lie inside the agent's
memory scopes, and validates the arguments; a refusal raises
:class:`ToolRefusedError` and is appended to the event log.

Optional attributes refine a tool: ``tenant_of(arguments, default)`` (the
tenant a call reaches, when not ``arguments.tenant``), ``refusal(agent,
arguments)`` (a tool's own scope rule: the reason to refuse, or None),
``model_parameters(agent)`` (the argument schema offered to a model, e.g.
narrowed to what the agent may reach) and ``idempotent``. An idempotent
tool may safely get the same call twice (it deduplicates by content or by
``ToolContext.idempotency_key``, or only reads): when the process running a
call died before its result was journaled, the workflow engine re-issues
the call with the same key only to an idempotent tool; any other call is
marked ``interrupted`` for a person to check (see ``workflows.tool_calls``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from janus_stack.errors import InvalidInputError, JanusError

if TYPE_CHECKING:
    from janus_stack.agents.manifest import AgentManifest
    from janus_stack.context import Janus

Access = Literal["read", "write", "none"]
ENTRY_POINT_GROUP = "janus_stack.tools"
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}

log = logging.getLogger(__name__)


class ToolRefusedError(JanusError):
    """A tool call outside the agent's tools or memory scopes."""


class ToolInterruptedError(JanusError):
    """A call of a tool that is not idempotent was cut short by a crash; a person decides."""


@dataclass
class ToolContext:
    """What a running tool may know about its caller.

    Attributes:
        tenant: the run's tenant (the default tenant of a call).
        agent: the calling agent's manifest; None for a workflow's own tool step.
        idempotency_key: unique per call and stable across resumes: a tool with
            outside side effects can use it to deduplicate.
        call_agent: runs another agent (``agents.call``); set by the engine.
    """

    janus: Janus
    tenant: str
    agent: AgentManifest | None = None
    run_id: str = ""
    step_key: str = ""
    idempotency_key: str = ""
    call_agent: Callable[[str, Any], dict[str, Any]] | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        return f"agent:{self.agent.name}" if self.agent is not None else "workflow"


@runtime_checkable
class Tool(Protocol):
    """A callable capability; attributes may be plain class or instance attributes."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> Mapping[str, Any]:
        """JSON Schema of the arguments."""
        ...

    @property
    def access(self) -> Access:
        """``read`` or ``write`` memory (checked against the agent's scopes), or ``none``."""
        ...

    def call(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]: ...


def is_idempotent(tool: Tool) -> bool:
    """Whether a call the process died in may be issued again (``idempotent``, default no)."""
    return bool(getattr(tool, "idempotent", False))


def target_tenant(tool: Tool, arguments: Mapping[str, Any], default: str) -> str:
    """The tenant a call reaches: the tool's own rule (``tenant_of``) or ``arguments.tenant``."""
    rule = getattr(tool, "tenant_of", None)
    if callable(rule):
        return str(rule(arguments, default))
    value = arguments.get("tenant")
    return value if isinstance(value, str) and value else default


@dataclass
class FunctionTool:
    """A Python function as a tool; its signature becomes the argument schema.

    A function may set ``janus_access = "read" | "write"`` (default ``none``),
    ``janus_context = True`` to receive the :class:`ToolContext` as
    ``context=`` and ``janus_idempotent = True`` when a repeated call with
    the same ``context.idempotency_key`` is harmless. A non-dict result is
    returned as ``{"result": value}``.
    """

    name: str
    function: Callable[..., Any]
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    access: Access = "none"
    idempotent: bool = False

    @classmethod
    def wrap(cls, name: str, function: Callable[..., Any]) -> FunctionTool:
        properties: dict[str, Any] = {}
        required: list[str] = []
        wants_context = bool(getattr(function, "janus_context", False))
        for param in inspect.signature(function).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if wants_context and param.name == "context":
                continue
            kind = _JSON_TYPES.get(param.annotation) if isinstance(param.annotation, type) else None
            if kind is None and isinstance(param.annotation, str):
                kind = {
                    "str": "string",
                    "int": "integer",
                    "float": "number",
                    "bool": "boolean",
                }.get(param.annotation)
            properties[param.name] = {"type": kind} if kind else {}
            if param.default is param.empty:
                required.append(param.name)
        access: Access
        declared = getattr(function, "janus_access", "none")
        if declared == "read":
            access = "read"
        elif declared == "write":
            access = "write"
        elif declared == "none":
            access = "none"
        else:
            raise InvalidInputError(f"tool {name!r}: janus_access must be read, write or none")
        schema = {"type": "object", "properties": properties, "required": required}
        doc = inspect.getdoc(function) or ""
        idempotent = bool(getattr(function, "janus_idempotent", False))
        return cls(name, function, doc.split("\n", 1)[0], schema, access, idempotent)

    def call(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        extra = {"context": context} if getattr(self.function, "janus_context", False) else {}
        result = self.function(**arguments, **extra)
        return result if isinstance(result, dict) else {"result": result}


def langchain_available() -> bool:
    return importlib.util.find_spec("langchain_core") is not None


def is_langchain_tool(value: object) -> bool:
    """Whether ``value`` is a LangChain ``BaseTool`` (of any package), importing nothing:
    an instance of it exists only once its module is loaded."""
    module = sys.modules.get("langchain_core.tools")
    return module is not None and isinstance(value, module.BaseTool)


def langchain_parameters(tool: Any) -> dict[str, Any]:
    """The JSON Schema of what a model passes to a LangChain tool: ``tool_call_schema``
    (the arguments less those LangChain injects), else ``get_input_schema()``."""
    schema = getattr(tool, "tool_call_schema", None) or tool.get_input_schema()
    # ``args_schema`` may be a JSON Schema already, else it is a pydantic model.
    found = dict(schema) if isinstance(schema, Mapping) else dict(schema.model_json_schema())
    found.setdefault("type", "object")
    return found


@dataclass
class LangChainTool:
    """A LangChain ``BaseTool`` behind the Tool protocol (touching no memory and not
    idempotent unless told otherwise). A tool with only an async implementation runs
    on its own event loop, as the engine calls tools from plain threads."""

    inner: Any
    access: Access = "none"
    idempotent: bool = False
    name: str = ""
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = self.name or str(self.inner.name)
        self.description = self.description or str(getattr(self.inner, "description", ""))
        self.parameters = self.parameters or langchain_parameters(self.inner)

    def call(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            result = self.inner.invoke(arguments)
        except NotImplementedError:  # async only (a coroutine, or just ``_arun``)
            result = asyncio.run(self.inner.ainvoke(arguments))
        return result if isinstance(result, dict) else {"result": result}


def from_langchain(
    tool: Any, *, access: Access = "none", idempotent: bool = False
) -> LangChainTool:
    """Adapt a LangChain ``BaseTool``; needs ``langchain-core`` (not a Janus dependency)."""
    if not langchain_available():
        raise InvalidInputError(
            "LangChain tools need langchain-core", hint="pip install langchain-core"
        )
    if not is_langchain_tool(tool):
        raise InvalidInputError(f"{tool!r} is not a langchain_core BaseTool")
    return LangChainTool(tool, access=access, idempotent=idempotent)


def _as_tool(name: str, loaded: Any) -> Tool:
    if is_langchain_tool(loaded):
        return from_langchain(loaded)
    if isinstance(loaded, Tool):
        return loaded
    if callable(loaded):
        return FunctionTool.wrap(name, loaded)
    raise InvalidInputError(f"entry point {name!r} is neither a tool nor a function")


def entry_point_tools() -> tuple[list[Tool], list[str]]:
    """Tools from the ``janus_stack.tools`` entry points, plus why any failed to load."""
    tools: list[Tool] = []
    problems: list[str] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            tools.append(_as_tool(point.name, point.load()))
        except Exception as exc:  # a broken plugin must not take the others down
            problems.append(f"tool plugin {point.name!r} ({point.value}): {exc}")
    return tools, problems


class Toolbox:
    """The tools known to one process, and the scope gate every call passes."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self.problems: list[str] = []
        for tool in tools:
            self.add(tool)

    @classmethod
    def default(cls, *, plugins: bool = True) -> Toolbox:
        """The built-ins, plus the entry-point plugins unless ``plugins`` is False."""
        from janus_stack.agents.builtin import builtin_tools  # noqa: PLC0415 - cycle

        box = cls(builtin_tools())
        if plugins:
            found, problems = entry_point_tools()
            for tool in found:
                box.add(tool)
            box.problems.extend(problems)
        return box

    def add(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise InvalidInputError(f"tool {tool.name!r} is registered twice")
        self._tools[tool.name] = tool

    def names(self) -> list[str]:
        return sorted(self._tools)

    def writing(self) -> set[str]:
        return {name for name, tool in self._tools.items() if tool.access == "write"}

    def get(self, name: str) -> Tool:
        tool = self._tools.get(name)
        if tool is None:
            raise InvalidInputError(f"unknown tool {name!r}; known: {', '.join(self.names())}")
        return tool

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def check(
        self, context: ToolContext, name: str, arguments: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The arguments as the tool will get them, or ToolRefusedError (logged as an event)."""
        try:
            return self._check(context, name, arguments)
        except ToolRefusedError as exc:
            context.janus.events.append(
                tenant=context.tenant,
                actor=context.actor,
                type="agent.tool.refused",
                subject=f"run:{context.run_id}" if context.run_id else f"tool:{name}",
                payload={"tool": name, "step": context.step_key, "reason": str(exc)},
            )
            raise

    def _check(
        self, context: ToolContext, name: str, arguments: Mapping[str, Any]
    ) -> dict[str, Any]:
        agent = context.agent
        if name not in self._tools:
            raise ToolRefusedError(f"unknown tool {name!r}")
        if agent is not None and name not in agent.tools:
            raise ToolRefusedError(f"agent {agent.name!r} may not call {name!r}: not in its tools")
        tool = self._tools[name]
        checked = dict(arguments)
        rule = getattr(tool, "refusal", None)
        reason = rule(agent, checked) if agent is not None and callable(rule) else None
        if reason:
            raise ToolRefusedError(reason)
        if tool.access == "none":
            return _validated(tool, checked)
        tenant = target_tenant(tool, checked, context.tenant)
        who = f"agent {agent.name!r}" if agent is not None else "this workflow"
        if tool.access == "read":
            scope = agent.memory.read if agent is not None else None
        else:
            scope = agent.memory.write if agent is not None else None
            if agent is not None and scope is None:
                raise ToolRefusedError(f"{who} has no memory.write scope; {name!r} writes memory")
        allowed = scope.tenants_for(context.tenant) if scope is not None else [context.tenant]
        if tenant not in allowed:
            raise ToolRefusedError(
                f"{who} may not {tool.access} tenant {tenant!r} with {name!r} "
                f"(its {tool.access} scope: {', '.join(allowed)})"
            )
        if "tenant" in tool.parameters.get("properties", {}):
            checked["tenant"] = tenant
        if scope is not None and scope.tags:
            _confine_tags(checked, scope.tags, tool, who)
        return _validated(tool, checked)

    def invoke(
        self, context: ToolContext, name: str, arguments: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Check, then run one call (no journal: the workflow engine adds that)."""
        checked = self.check(context, name, arguments)
        return self._tools[name].call(context, checked)


def _confine_tags(arguments: dict[str, Any], tags: Mapping[str, str], tool: Tool, who: str) -> None:
    """Reads are filtered to the scope's tags; writes are labelled with them."""
    properties = tool.parameters.get("properties", {})
    key = "filters" if tool.access == "read" else "tags"
    if key not in properties:
        return
    given = dict(arguments.get(key) or {})
    for tag, value in tags.items():
        name = f"tags.{tag}" if key == "filters" else tag
        if name in given and str(given[name]) != value:
            raise ToolRefusedError(
                f"{who} may only {tool.access} {key} {name}={value!r}, not {given[name]!r}"
            )
        given[name] = value
    arguments[key] = given


def _validated(tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    import jsonschema  # noqa: PLC0415 - only tool calls pay for it

    schema = dict(tool.parameters) or {"type": "object"}
    error = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(schema)(schema).iter_errors(arguments)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "arguments"
        raise InvalidInputError(f"tool {tool.name!r}: {where}: {error.message}")
    return arguments
