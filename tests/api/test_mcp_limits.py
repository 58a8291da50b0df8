"""The in-process ``janus mcp`` applies the API's per-key and per-tenant rate limits.

The backend is opened as ``janus mcp`` opens it (:func:`open_local`), with
small buckets, and driven through the tool layer the MCP server calls: a
refused call must be the tools' error result (``isError`` and the reason),
counted in the metrics and logged once per key and scope as
``auth.rate_limited`` with actor ``mcp``.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.to_thread
from api_server import make_keys
from mcp import types

from janus_stack.api.state import ServerOptions
from janus_stack.config import load_settings
from janus_stack.events import EventLog
from janus_stack.ledger.database import Ledger
from janus_stack.mcp.local import LocalBackend, open_local
from janus_stack.mcp.tools import ToolSurface

# Buckets that refill too slowly to matter while the test runs: what is taken stays taken.
OPTIONS = ServerOptions(warm=False, key_rate=0.001, key_burst=2, tenant_rate=0.001, tenant_burst=3)


async def _no_progress(done: float, message: str) -> None:
    return None


def refusal(result: types.CallToolResult) -> str:
    assert result.is_error, result.content
    text = result.content[0]
    assert isinstance(text, types.TextContent)
    return text.text


def test_key_then_tenant_buckets_refuse_tool_calls(tmp_path: Path) -> None:
    tokens = make_keys(tmp_path, {"a": ("acme", "reader", []), "b": ("acme", "reader", [])})
    settings = load_settings(environ={"JANUS_HOME": str(tmp_path)}, cwd=tmp_path)

    async def main() -> tuple[list[str], dict[str, float | None]]:
        first = await anyio.to_thread.run_sync(open_local, settings, tokens["a"], OPTIONS)
        # A second session of the same process, as another key of the tenant.
        key_b = first.state.keys.verify(tokens["b"])
        assert key_b is not None
        second = LocalBackend(
            state=first.state, token=tokens["b"], key=key_b, telemetry=first.telemetry
        )
        try:
            texts: list[str] = []
            for backend in (first, first, second):  # key a: 2 of 2; the tenant: 3 of 3
                assert (await backend.documents(limit=1, offset=0))["total"] == 0
            for backend, arguments in (
                (first, {"query": "Apollo"}),  # key a's bucket is empty
                (second, {"query": "Apollo"}),  # key b has one left, the tenant none
                (second, {"query": "Apollo"}),
            ):
                result = await ToolSurface(backend).call("search", arguments, _no_progress)
                texts.append(refusal(result))
            registry = first.telemetry.registry
            counts = {
                scope: registry.get_sample_value("janus_rate_limited_total", {"scope": scope})
                for scope in ("key", "tenant")
            }
        finally:
            await first.aclose()
        return texts, counts

    texts, counts = anyio.run(main)
    assert texts[0].startswith("search: rate limit of this key exceeded; retry in ")
    assert texts[1].startswith("search: rate limit of this tenant exceeded; retry in ")
    assert texts[2].startswith("search: rate limit of this key exceeded")  # b's token is gone
    assert counts == {"key": 2.0, "tenant": 1.0}

    with Ledger(settings.slot_url("relational")) as ledger:
        events = EventLog(ledger).query(tenant="acme", type="auth.rate_limited")
    assert {(e.actor, e.subject, e.payload["scope"]) for e in events} == {
        ("mcp", tokens["a"][:12], "key"),
        ("mcp", tokens["b"][:12], "tenant"),
        ("mcp", tokens["b"][:12], "key"),
    }
    assert len(events) == 3  # each (key, scope) once, however often it was refused
