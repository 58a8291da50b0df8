"""``janus mcp``: Janus as memory for MCP clients (desktop assistants, agent frameworks).

Layout: ``backend`` (the :class:`MemoryBackend` contract, one API key's
principal), ``local`` (in process on this JANUS_HOME, checking the key's
permissions like the HTTP API does), ``remote`` (a proxy through
:class:`~janus_stack.client.AsyncJanusClient` to a ``janus serve``),
``tools`` (search, ask, memory, ingest, run_workflow, run_status),
``resources`` (documents as ``janus://documents/{id}``) and ``server``
(the SDK's low-level server on stdio or streamable HTTP).
"""

from janus_stack.mcp.backend import MemoryBackend
from janus_stack.mcp.server import build_server, serve

__all__ = ["MemoryBackend", "build_server", "serve"]
