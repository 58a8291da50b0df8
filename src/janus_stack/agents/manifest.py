"""Agent manifests: one YAML file per agent (ARCHITECTURE.md §3).

    name: researcher
    description: Finds what the memory says about a question.
    instructions: |
      Answer from the memory only and cite every claim.
    model: default            # the llm slot; "none" = deterministic; or an llm slot URL
    tools: [memory.search, memory.ask]
    calls: [summariser]       # the agents it may ask through agents.call
    memory:
      read:  {tenants: [default], tags: {project: apollo}}
      write: {tenants: [default]}          # omit: the agent writes nothing
    budget: {max_tokens: 4000, max_cost: 0.05, max_steps: 6, max_wall_seconds: 60}
    cache: {threshold: 0.95, ttl_seconds: 3600}   # or `cache: true`; omit: no cache
    output: {max_answer_chars: 4000, max_argument_chars: 2000, max_items: 50, charset: unicode}

``memory.read.tenants`` empty means "the tenant of the run". Tags in a scope
are filters every read is confined to and labels every write carries.
``calls`` is the scope of ``agents.call``: an agent reaches only the agents
it names. ``model: {tool_choice: required}`` makes the first turn a tool call.
``output`` bounds what the model may write in one turn (see :class:`OutputLimits`);
fields left out come from the ``agent_output`` setting (``[agent_output]`` in
janus.toml or ``JANUS_AGENT_OUTPUT`` as JSON), else the defaults.
Static checks beyond the schema (unknown tools, disallowed scopes) live in
:func:`check_manifest`, which the registry runs at load.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from janus_stack.agents.sourcefile import Problem, SourceFile
from janus_stack.errors import InvalidInputError
from janus_stack.ids import check_tenant

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
DEFAULT_MAX_STEPS = 8


class Budget(BaseModel):
    """Limits on one agent step (manifest) or on a whole run (workflow); None = no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int | None = Field(default=None, ge=1)
    max_cost: float | None = Field(default=None, ge=0)
    max_steps: int | None = Field(default=None, ge=1, le=100_000)
    max_wall_seconds: float | None = Field(default=None, gt=0)


class Scope(BaseModel):
    """Tenants an agent may reach and the tags its reads are confined to / writes carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenants: list[str] = Field(default_factory=list, max_length=50)
    tags: dict[str, str] = Field(default_factory=dict, max_length=20)

    def tenants_for(self, run_tenant: str) -> list[str]:
        return list(self.tenants) or [run_tenant]


class CachePolicy(BaseModel):
    """The semantic cache of an agent's steps (``workflows.cache``).

    A step reuses the result of an earlier successful step of the same agent
    and tenant whose prompt's embedding has a cosine similarity of at least
    ``threshold`` with its own and that is at most ``ttl_seconds`` old.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(default=0.95, gt=0, le=1)
    ttl_seconds: float = Field(default=3600.0, gt=0)


class OutputLimits(BaseModel):
    """Bounds on the JSON a model writes in one turn, enforced by the action schema.

    With grammar-constrained decoding a string ends only when the model closes
    it, so every string needs a bound; the defaults leave a real model room for
    long cited answers, facts and file lists in any language. ``charset: basic``
    (letters, digits, ``,.;:?!'()/_-`` and space, no escapes) with small bounds
    keeps a random-weight test model's turns short and well formed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_answer_chars: int = Field(default=4000, ge=1, le=200_000)
    max_argument_chars: int = Field(default=2000, ge=1, le=200_000)
    max_items: int = Field(default=50, ge=1, le=10_000)
    charset: Literal["unicode", "basic"] = "unicode"

    def over(self, base: OutputLimits) -> OutputLimits:
        """``base`` with the fields set explicitly here (a manifest's) taking precedence."""
        return base.model_copy(update={name: getattr(self, name) for name in self.model_fields_set})


class MemoryScopes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    read: Scope = Field(default_factory=Scope)
    write: Scope | None = None


class ModelRef(BaseModel):
    """Which model answers: ``default`` (the llm slot), ``none``, or an llm slot URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = "default"
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_output_tokens: int = Field(default=512, ge=1, le=32_768)
    tool_choice: Literal["auto", "required"] = "auto"


class AgentManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=2000)
    instructions: str = Field(min_length=1, max_length=50_000)
    model: ModelRef = Field(default_factory=ModelRef)
    tools: list[str] = Field(default_factory=list, max_length=50)
    calls: list[str] = Field(default_factory=list, max_length=50)
    memory: MemoryScopes = Field(default_factory=MemoryScopes)
    budget: Budget = Field(default_factory=lambda: Budget(max_steps=DEFAULT_MAX_STEPS))
    cache: CachePolicy | None = None
    output: OutputLimits = Field(default_factory=OutputLimits)

    @field_validator("calls")
    @classmethod
    def _agent_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not re.fullmatch(NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"not agent names: {', '.join(map(repr, bad))}")
        return value

    @field_validator("model", mode="before")
    @classmethod
    def _model_shorthand(cls, value: Any) -> Any:
        return {"provider": value} if isinstance(value, str) else value

    @field_validator("cache", mode="before")
    @classmethod
    def _cache_shorthand(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    @property
    def max_steps(self) -> int:
        return self.budget.max_steps or DEFAULT_MAX_STEPS

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "model": self.model.provider,
            "tools": list(self.tools),
            "reads": self.memory.read.tenants or ["<run tenant>"],
            "writes": [] if self.memory.write is None else self.memory.write.tenants_for("<run>"),
        }


def check_manifest(
    source: SourceFile,
    manifest: AgentManifest,
    *,
    known_tools: Collection[str],
    writing_tools: Collection[str],
    allowed_tenants: Collection[str] | None,
) -> list[Problem]:
    """Findings the schema cannot express: unknown tools and disallowed scopes."""
    problems: list[Problem] = []
    for index, tool in enumerate(manifest.tools):
        if tool not in known_tools:
            problems.append(
                source.problem(
                    ("tools", index),
                    f"unknown tool {tool!r}; known: {', '.join(sorted(known_tools))}",
                )
            )
        elif tool in writing_tools and manifest.memory.write is None:
            problems.append(
                source.problem(
                    ("tools", index),
                    f"tool {tool!r} writes memory but the agent has no memory.write scope",
                )
            )
        elif tool in writing_tools and manifest.cache is not None:
            problems.append(
                source.problem(
                    ("cache",),
                    f"tool {tool!r} writes memory, so a cached step would skip the write; "
                    "drop `cache` or the tool",
                )
            )
    if manifest.calls and "agents.call" not in manifest.tools:
        problems.append(source.problem(("calls",), "`calls` needs agents.call in `tools`"))
    if "agents.call" in manifest.tools and not manifest.calls:
        index = manifest.tools.index("agents.call")
        problems.append(
            source.problem(
                ("tools", index), "agents.call needs `calls`: the agents this one may ask"
            )
        )
    if manifest.model.tool_choice == "required" and (not manifest.tools or manifest.max_steps < 2):
        problems.append(
            source.problem(
                ("model", "tool_choice"),
                "tool_choice required needs a tool and budget.max_steps of at least 2 "
                "(a turn to call it, a turn to answer)",
            )
        )
    scopes = [("read", manifest.memory.read)]
    if manifest.memory.write is not None:
        scopes.append(("write", manifest.memory.write))
    for kind, scope in scopes:
        for index, tenant in enumerate(scope.tenants):
            where = ("memory", kind, "tenants", index)
            if tenant in ("*", "all"):
                problems.append(
                    source.problem(where, "wildcard tenants are not allowed; list each tenant")
                )
                continue
            try:
                check_tenant(tenant)
            except InvalidInputError as exc:
                problems.append(source.problem(where, str(exc)))
                continue
            if tenant.startswith("_") or (
                allowed_tenants is not None and tenant not in allowed_tenants
            ):
                allowed = ", ".join(sorted(allowed_tenants or ())) or "none"
                problems.append(
                    source.problem(
                        where, f"disallowed scope: tenant {tenant!r} (allowed: {allowed})"
                    )
                )
    write = manifest.memory.write
    if write is not None and manifest.memory.read.tenants:
        outside = set(write.tenants_for("")) - set(manifest.memory.read.tenants) - {""}
        if outside:
            problems.append(
                source.problem(
                    ("memory", "write", "tenants"),
                    f"disallowed scope: writes to {sorted(outside)} it may not read",
                )
            )
    return problems
