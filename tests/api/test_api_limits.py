"""Rate limits per key and per tenant (429 + Retry-After), ``janus keys``, ``--workers`` refusal."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_server import Server, make_keys, start_server, stop_server
from typer.testing import CliRunner, Result

from janus_stack.api.keys import Role, check_role, check_scopes
from janus_stack.cli import app
from janus_stack.client import JanusClient, RateLimitedError, UnauthorizedError
from janus_stack.errors import ConfigError, InvalidInputError


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("api-limits")
    tokens = make_keys(
        home,
        {
            "a": ("acme", "reader", []),
            "b": ("acme", "reader", []),
            "admin": ("ops", "admin", []),
        },
    )
    server = start_server(
        home,
        "--no-warm",
        "--key-rate", "0.01", "--key-burst", "3",
        "--tenant-rate", "0.01", "--tenant-burst", "5",
    )  # fmt: skip
    server.extra = tokens
    try:
        yield server
    finally:
        stop_server(server)


def janus(home: Path, *args: str) -> Result:
    """``janus ARGS`` in process (a fresh interpreter costs seconds on this machine)."""
    return CliRunner().invoke(app, list(args), env={"JANUS_HOME": str(home)})


def test_key_then_tenant_limits(limited: Server) -> None:
    a = JanusClient(limited.url, limited.extra["a"])
    b = JanusClient(limited.url, limited.extra["b"])
    for _ in range(3):
        a.list_documents()
    with pytest.raises(RateLimitedError) as refused:
        a.list_documents()
    assert refused.value.retry_after >= 1 and refused.value.type == "rate_limited"
    assert "key" in refused.value.message
    raw = httpx.get(
        f"{limited.url}/v1/documents", headers={"Authorization": f"Bearer {limited.extra['a']}"}
    )
    assert raw.status_code == 429 and int(raw.headers["retry-after"]) >= 1
    # Key b has its own bucket, but the tenant's (burst 5) has 2 tokens left.
    b.list_documents()
    b.list_documents()
    with pytest.raises(RateLimitedError) as tenant_refused:
        b.list_documents()
    assert "tenant" in tenant_refused.value.message
    # Another tenant is unaffected; health and metrics are never limited.
    admin = JanusClient(limited.url, limited.extra["admin"])
    assert admin.list_documents()["total"] == 0
    text = admin.metrics()
    assert 'janus_rate_limited_total{scope="key"} 2.0' in text
    assert 'janus_rate_limited_total{scope="tenant"} 1.0' in text
    # Each (key, scope) is logged once a minute, however often it is refused.
    events = admin.events(type="auth.rate_limited", all_tenants=True)["events"]
    assert sorted(e["payload"]["scope"] for e in events) == ["key", "tenant"]


def test_keys_cli_create_list_revoke_while_serving(limited: Server) -> None:
    created = janus(limited.home, "keys", "create", "--tenant", "ops", "--role", "agent", "--json")
    assert created.exit_code == 0, created.output
    record = json.loads(created.stdout)
    token = record["token"]
    assert token.startswith("jns_") and record["role"] == "agent"
    client = JanusClient(limited.url, token)
    assert client.list_documents()["total"] == 0

    listed = janus(limited.home, "keys", "list", "--tenant", "ops", "--json")
    assert listed.exit_code == 0, listed.output
    assert token not in listed.stdout and record["prefix"] in listed.stdout
    assert all("key_hash" not in row and "token" not in row for row in json.loads(listed.stdout))

    revoked = janus(limited.home, "keys", "revoke", record["prefix"])
    assert revoked.exit_code == 0, revoked.output
    time.sleep(2.2)  # the server trusts a verified key for 2 s
    with pytest.raises(UnauthorizedError):
        client.list_documents()


def test_roles_and_scopes_are_checked() -> None:
    assert check_role(" Writer ") is Role.WRITER
    with pytest.raises(InvalidInputError, match="unknown role"):
        check_role("root")
    assert check_scopes(Role.AGENT, ["memory:read,documents:read"]) == [
        "documents:read",
        "memory:read",
    ]
    with pytest.raises(InvalidInputError, match="only narrow"):
        check_scopes(Role.AGENT, ["events:read"])
    with pytest.raises(InvalidInputError, match="unknown scope"):
        check_scopes(Role.ADMIN, ["everything"])


def test_workers_refused_on_embedded_stores(tmp_path: Path) -> None:
    result = janus(tmp_path, "serve", "--workers", "2")
    assert isinstance(result.exception, ConfigError), result.output
    message = str(result.exception)
    assert "--workers 2 needs server backends" in message and "embedded" in message
