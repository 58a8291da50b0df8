"""The authorisation matrix: every /v1 route and /metrics x every role x own / other tenant.

Three ways to reach for tenant B's data with a key of tenant A:

* ``own``: A's own resources → 2xx when the role grants the route, else 403;
* ``other_id``: B's document ID without naming B → 404 (a key only ever
  sees its own tenant, so B's document does not exist for it), 403 if the
  role lacks the permission anyway; routes without IDs must return only A's
  data (checked on the bodies);
* ``other_param``: ``?tenant=B`` → 2xx for admin keys, 403 for every other role.

Every refusal must be in the event log as ``auth.refused``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from api_server import (  # noqa: F401 - server_fixture is the `server` fixture
    ROLES,
    Server,
    server_fixture,
)

PERMISSIONS = {
    "admin": {
        *("docs.read", "docs.download", "docs.write", "memory", "events", "verify", "system"),
        *("metrics", "keys"),
    },
    "writer": {"docs.read", "docs.download", "docs.write", "memory", "events"},
    "reader": {"docs.read", "docs.download", "memory"},
    "agent": {"docs.read", "memory"},
}


@dataclass(frozen=True)
class Route:
    name: str
    permission: str
    ok: int
    call: Callable[[httpx.Client, str, dict[str, str]], httpx.Response]
    by_id: bool = False  # addresses one document (or key), so another tenant's ID is a 404
    target: str = "document"  # what the ID names: a document or an API key
    consumes: bool = False  # a success deletes or revokes its target


def _create_key(c: httpx.Client, _target: str, params: dict[str, str]) -> httpx.Response:
    return c.post("/v1/keys", params=params, json={"role": "reader", "name": c.headers["x-case"]})


ROUTES = [
    Route("list", "docs.read", 200, lambda c, d, p: c.get("/v1/documents", params=p)),
    Route("get", "docs.read", 200, lambda c, d, p: c.get(f"/v1/documents/{d}", params=p), True),
    Route(
        "raw", "docs.download", 200, lambda c, d, p: c.get(f"/v1/documents/{d}/raw", params=p), True
    ),
    Route(
        "upload",
        "docs.write",
        201,
        lambda c, d, p: c.post(
            "/v1/documents",
            params=p,
            files={"file": (f"m-{c.headers['x-case']}.txt", c.headers["x-case"].encode())},
        ),
    ),
    Route(
        "delete",
        "docs.write",
        200,
        lambda c, d, p: c.delete(f"/v1/documents/{d}", params=p),
        by_id=True,
        consumes=True,
    ),
    Route(
        "memory",
        "memory",
        200,
        lambda c, d, p: c.get("/v1/memory", params={"topic": "Apollo", **p}),
    ),
    Route(
        "search",
        "memory",
        200,
        lambda c, d, p: c.post("/v1/search", params=p, json={"query": "Apollo"}),
    ),
    Route(
        "ask",
        "memory",
        200,
        lambda c, d, p: c.post("/v1/ask", params=p, json={"question": "Apollo?"}),
    ),
    Route("events", "events", 200, lambda c, d, p: c.get("/v1/events", params=p)),
    Route("verify", "verify", 200, lambda c, d, p: c.post("/v1/events/verify", params=p)),
    Route("system", "system", 200, lambda c, d, p: c.get("/v1/system", params=p)),
    Route("metrics", "metrics", 200, lambda c, d, p: c.get("/metrics", params=p)),
    Route("keys.list", "keys", 200, lambda c, d, p: c.get("/v1/keys", params=p)),
    Route("keys.create", "keys", 201, _create_key),
    Route(
        "keys.revoke",
        "keys",
        200,
        lambda c, d, p: c.delete(f"/v1/keys/{d}", params=p),
        by_id=True,
        target="key",
        consumes=True,
    ),
]


@pytest.fixture(scope="module")
def corpus(server: Server) -> dict[str, list[str]]:
    """One document per tenant about Apollo; several throw-away ones to delete in the matrix."""
    ids: dict[str, list[str]] = {}
    for tenant in ("acme", "globex"):
        with _client(server, tenant, "writer", "setup") as client:
            ids[tenant] = []
            for name in ("apollo.txt", *(f"spare-{i}.txt" for i in range(3))):
                text = f"Apollo 8 notes of {tenant}, file {name}. Frank Borman commanded it.\n"
                data = {} if name == "apollo.txt" else {"entities": "false"}
                files = {"file": (name, text.encode())}
                response = client.post("/v1/documents", files=files, data=data)
                assert response.status_code == 201, response.text
                ids[tenant].extend(response.json()["documents"])
    return ids


@pytest.fixture(scope="module")
def spare_keys(server: Server) -> dict[str, list[str]]:
    """Reader keys of each tenant, for the matrix to revoke (or fail to)."""
    ids: dict[str, list[str]] = {}
    for tenant in ("acme", "globex"):
        with _client(server, tenant, "admin", "setup") as client:
            made = [client.post("/v1/keys", json={"role": "reader"}) for _ in range(3)]
        assert all(response.status_code == 201 for response in made), made[0].text
        ids[tenant] = [response.json()["id"] for response in made]
    return ids


def _client(server: Server, tenant: str, role: str, case: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.key(tenant, role)}", "x-case": case},
        timeout=60,
    )


def _expected(route: Route, role: str, way: str) -> int:
    if route.permission not in PERMISSIONS[role]:
        return 403
    if way == "own":
        return route.ok
    if way == "other_param":
        return route.ok if role == "admin" else 403
    return 404 if route.by_id else route.ok


def _only(tenant: str, body: Any, route: str) -> None:
    """A 2xx body of a route without IDs mentions no other tenant's data."""
    other = "globex" if tenant == "acme" else "acme"
    text = str(body)
    assert f"notes of {other}" not in text, (route, text[:500])
    if route == "events":
        assert {e["tenant"] for e in body["events"]} <= {tenant}
    if route == "keys.list":
        assert {k["tenant"] for k in body["keys"]} == {tenant}
    if route == "keys.create":
        assert body["tenant"] == tenant and body["token"].startswith(body["prefix"])


def test_authorization_matrix(
    server: Server, corpus: dict[str, list[str]], spare_keys: dict[str, list[str]]
) -> None:
    spares = {
        "document": {t: list(ids[1:]) for t, ids in corpus.items()},
        "key": {t: list(ids) for t, ids in spare_keys.items()},
    }
    live = {"document": corpus, "key": spare_keys}
    failures: list[str] = []
    refusals = 0
    for route in ROUTES:
        for role in ROLES:
            for way in ("own", "other_id", "other_param"):
                expected = _expected(route, role, way)
                case = f"{route.name}-{role}-{way}"
                # Deletes and revocations that succeed consume a spare; everything else reads.
                if route.consumes and expected == 200:
                    target = spares[route.target][
                        "globex" if way == "other_param" else "acme"
                    ].pop()
                else:
                    target = live[route.target]["acme" if way == "own" else "globex"][0]
                params = {"tenant": "globex"} if way == "other_param" else {}
                with _client(server, "acme", role, case) as client:
                    response = route.call(client, target, params)
                if response.status_code != expected:
                    failures.append(f"{case}: {response.status_code} != {expected}")
                    continue
                if expected == 403:
                    refusals += 1
                    assert response.json()["error"]["type"] == "forbidden"
                elif expected < 300 and not route.by_id and route.name not in ("upload", "metrics"):
                    _only("globex" if way == "other_param" else "acme", response.json(), route.name)
    assert not failures, "\n".join(failures)

    with _client(server, "acme", "admin", "audit") as admin:
        events = admin.get(
            "/v1/events", params={"type": "auth.refused", "all_tenants": "true", "limit": 10_000}
        ).json()["events"]
    matrix_refusals = [
        e for e in events if e["payload"]["reason"] in ("permission", "cross_tenant")
    ]
    assert len(matrix_refusals) >= refusals
    assert all(e["tenant"] == "acme" for e in matrix_refusals)
    assert not any("jns_" in str(e["payload"]) for e in events)  # never a token


def test_unauthenticated_every_route_is_401_and_logged(
    server: Server, corpus: dict[str, list[str]]
) -> None:
    document_id = corpus["acme"][0]
    for route in ROUTES:
        with httpx.Client(base_url=server.url, headers={"x-case": "anon"}, timeout=30) as client:
            response = route.call(client, document_id, {})
        assert response.status_code == 401, (route.name, response.text)
        assert response.json()["error"]["type"] == "unauthorized"
    with _client(server, "acme", "admin", "audit") as admin:
        events = admin.get(
            "/v1/events",
            params={"type": "auth.refused", "tenant": "_api", "limit": 10_000},
        ).json()["events"]
    assert sum(e["payload"]["reason"] == "missing_key" for e in events) >= len(ROUTES)
    # The document survived every refused delete.
    with _client(server, "acme", "reader", "check") as reader:
        assert reader.get(f"/v1/documents/{document_id}").status_code == 200
