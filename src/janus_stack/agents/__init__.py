"""Agents: manifests, the registry that reloads them, tools and the scope gate.

    from janus_stack.agents import AgentRegistry, Toolbox

    registry = AgentRegistry([home / "agents"], Toolbox.default())
    writer = registry.get("writer")

``manifest`` holds the schema, ``registry`` the directory watcher,
``tools`` the Tool protocol and the gate, ``builtin`` the built-in tools,
``runtime`` one agent's turn loop (model or deterministic fallback) and
``budget`` the meters and prices.
"""

from janus_stack.agents.budget import BudgetExceededError, Meter, PriceTable
from janus_stack.agents.manifest import AgentManifest, Budget, MemoryScopes, ModelRef, Scope
from janus_stack.agents.registry import AgentEntry, AgentRegistry, load_manifest
from janus_stack.agents.runtime import AgentIO, AgentResult, AgentRunner
from janus_stack.agents.sourcefile import Problem, SpecError
from janus_stack.agents.tools import (
    ENTRY_POINT_GROUP,
    FunctionTool,
    Tool,
    Toolbox,
    ToolContext,
    ToolRefusedError,
    from_langchain,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "AgentEntry",
    "AgentIO",
    "AgentManifest",
    "AgentRegistry",
    "AgentResult",
    "AgentRunner",
    "Budget",
    "BudgetExceededError",
    "FunctionTool",
    "MemoryScopes",
    "Meter",
    "ModelRef",
    "PriceTable",
    "Problem",
    "Scope",
    "SpecError",
    "Tool",
    "ToolContext",
    "ToolRefusedError",
    "Toolbox",
    "from_langchain",
    "load_manifest",
]
