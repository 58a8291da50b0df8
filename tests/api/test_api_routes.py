"""Every route through the SDK (sync and async), bad input, and SSE with a real client."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import (  # noqa: F401 - server_fixture is the `server` fixture
    Server,
    server_fixture,
)

from janus_stack.api.sources import check_name
from janus_stack.client import (
    AsyncJanusClient,
    BadRequestError,
    ForbiddenError,
    JanusClient,
    NotFoundError,
    PayloadTooLargeError,
    UnauthorizedError,
)
from janus_stack.errors import InvalidInputError

APOLLO = (
    b"Apollo 8 was the first crewed spacecraft to orbit the Moon. Frank Borman commanded "
    b"Apollo 8, with James Lovell and William Anders. NASA launched it in December 1968.\n"
)
GEMINI = b"Gemini 7 flew in December 1965. Frank Borman and James Lovell spent two weeks aloft.\n"


@pytest.fixture(scope="module")
def writer(server: Server) -> JanusClient:
    return JanusClient(server.url, server.key("acme", "writer"))


@pytest.fixture(scope="module")
def admin(server: Server) -> JanusClient:
    return JanusClient(server.url, server.key("acme", "admin"))


@pytest.fixture(scope="module")
def apollo(writer: JanusClient) -> dict[str, object]:
    uploaded = writer.upload(APOLLO, name="apollo.txt", tags={"topic": "space"})
    assert uploaded["status"] == "ingested"
    return uploaded


def test_health_ready_metrics(server: Server, admin: JanusClient) -> None:
    assert admin.health()["status"] == "ok"
    ready = admin.ready()
    assert ready["status"] == "ready"
    assert {s["slot"] for s in ready["slots"]} >= {"relational", "objects", "vectors", "graph"}
    assert all(s["ok"] for s in ready["slots"])
    text = admin.metrics()
    for name in (
        "janus_http_request_duration_seconds_bucket",
        "janus_event_log_length",
        "janus_rate_limited_total",
    ):
        assert name in text
    system = admin.system()
    assert system["cpu_count"] >= 1 and system["memory"]["total"] > 0
    assert system["disk"]["free"] > 0 and isinstance(system["queue"], dict)
    openapi = httpx.get(f"{server.url}/openapi.json").json()
    assert (
        "/v1/search" in openapi["paths"] and "/v1/documents/{document_id}/raw" in openapi["paths"]
    )
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_upload_versions_list_get_download(writer: JanusClient, apollo: dict[str, object]) -> None:
    (document_id,) = apollo["documents"]  # type: ignore[misc]
    again = writer.upload(APOLLO, name="apollo.txt", tags={"topic": "space"})
    assert again["status"] == "unchanged" and again["documents"] == [document_id]
    gemini = writer.upload(GEMINI, name="gemini.txt", tags={"topic": "space", "era": "60s"})
    assert gemini["status"] == "ingested"

    listed = writer.list_documents(tags={"topic": "space"})
    assert listed["total"] == 2
    assert {d["name"] for d in listed["documents"]} == {"apollo.txt", "gemini.txt"}
    page = writer.list_documents(limit=1, offset=1)
    assert len(page["documents"]) == 1 and page["total"] == 2
    assert writer.list_documents(tags={"era": "60s"})["total"] == 1
    assert writer.list_documents(title="APOLL")["documents"][0]["id"] == document_id
    assert writer.list_documents(name="gemini.txt")["total"] == 1
    assert writer.list_documents(status="failed")["total"] == 0

    shown = writer.get_document(document_id, chunk_limit=5)
    assert shown["name"] == "apollo.txt" and shown["status"] == "done"
    assert shown["versions"][0]["stages"] and shown["chunks"]["total"] >= 1
    assert "Borman" in shown["chunks"]["items"][0]["text"]
    assert writer.download(document_id) == APOLLO

    changed = APOLLO + b"The crew read from the Book of Genesis.\n"
    replaced = writer.upload(changed, name="apollo.txt")
    assert replaced["status"] == "ingested" and replaced["documents"] == [document_id]
    versions = writer.get_document(document_id)["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert writer.download(document_id) == changed


def test_search_memory_ask(writer: JanusClient, apollo: dict[str, object]) -> None:
    (document_id,) = apollo["documents"]  # type: ignore[misc]
    for mode in ("hybrid", "dense", "keyword", "graph"):
        hits = writer.search("who commanded Apollo 8", mode=mode, k=3)["hits"]
        assert hits, mode
        assert hits[0]["document"]["id"] == document_id
    # Identical bytes: "unchanged" after the upload test, "ingested" when run alone.
    writer.upload(GEMINI, name="gemini.txt", tags={"topic": "space", "era": "60s"})
    filtered = writer.search("Borman", mode="keyword", filters={"title": "gemini"})["hits"]
    assert filtered and all(h["document"]["title"] == "gemini" for h in filtered)

    memory = writer.memory("Apollo 8")
    assert memory["entity"]["name"] == "Apollo 8"
    assert any(d["id"] == document_id for d in memory["documents"])

    answer = writer.ask("Who commanded Apollo 8?")
    assert answer["found"] and "Borman" in answer["answer"]
    assert answer["citations"][0]["document"]["id"] == document_id


def test_ask_stream_sync_and_async(server: Server, writer: JanusClient, apollo: object) -> None:
    events = list(writer.ask_stream("Who commanded Apollo 8?"))
    assert [e.kind for e in events] == ["retrieval", "token", "answer"]
    assert "Borman" in events[-1].data["answer"]

    async def run() -> tuple[list[str], int]:
        async with AsyncJanusClient(server.url, server.key("acme", "reader")) as client:
            kinds = [e.kind async for e in client.ask_stream("Who commanded Apollo 8?")]
            found = await client.search("Apollo 8", k=2)
            return kinds, len(found["hits"])

    kinds, hits = asyncio.run(run())
    assert kinds == ["retrieval", "token", "answer"] and hits >= 1


def test_sse_disconnect_mid_stream_frees_the_server(
    server: Server, writer: JanusClient, apollo: object
) -> None:
    """Clients leave after the first event; the server keeps serving, writes still get the lock."""
    headers = {"Authorization": f"Bearer {server.key('acme', 'writer')}"}
    body = {"question": "Who commanded Apollo 8?", "stream": True}
    for _ in range(5):
        with (
            httpx.Client(base_url=server.url, headers=headers, timeout=30) as http,
            http.stream("POST", "/v1/ask", json=body) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("event:"):
                    assert line == "event: retrieval"
                    break
    # The generator thread released the read lock: an upload (write lock) completes.
    start = time.monotonic()
    assert writer.upload(b"after the stream\n", name="after.txt")["status"] == "ingested"
    assert time.monotonic() - start < 20
    assert writer.health()["status"] == "ok"
    # Leaving an SDK stream early closes it cleanly too.
    for event in writer.ask_stream("Who commanded Apollo 8?"):
        assert event.kind == "retrieval"
        break


def test_events_query_paging_and_verify(admin: JanusClient, apollo: object) -> None:
    first = admin.events(limit=2)
    assert len(first["events"]) == 2 and first["next_after"] == first["events"][-1]["seq"]
    following = admin.events(limit=2, after=first["next_after"])
    assert following["events"][0]["seq"] > first["next_after"]
    uploads = admin.events(type="api.document.*")["events"]
    assert uploads and all(e["tenant"] == "acme" for e in uploads)
    assert any(e["actor"].startswith("key:jns_") for e in uploads)
    assert admin.events(type="document.*", since="2000-01-01T00:00:00Z")["events"]
    report = admin.verify_events()
    assert report["ok"] is True and report["checked"] > 0


def test_delete(writer: JanusClient) -> None:
    created = writer.upload(b"short lived\n", name="temp.txt")
    (document_id,) = created["documents"]
    deleted = writer.delete_document(document_id)
    assert deleted["deleted"] is True and deleted["doc_ids_removed"]
    with pytest.raises(NotFoundError):
        writer.get_document(document_id)
    with pytest.raises(NotFoundError):
        writer.download(document_id)
    with pytest.raises(NotFoundError):
        writer.delete_document(document_id)


def test_bad_input_is_4xx_with_a_problem_body(server: Server, writer: JanusClient) -> None:
    http = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.key('acme', 'writer')}"},
        timeout=30,
    )
    json_headers = {"Content-Type": "application/json"}
    cases = [
        (http.post("/v1/search", content=b"{not json", headers=json_headers), 422),
        (http.post("/v1/search", content=b'{"query": "\xff\xfe"}', headers=json_headers), 400),
        (http.post("/v1/search", json={"query": "x", "k": "many"}), 422),
        (http.post("/v1/search", json={"query": "x", "k": 0}), 422),
        (http.post("/v1/search", json={"query": ""}), 422),
        (http.post("/v1/search", json={"query": "x", "mode": "psychic"}), 422),
        (http.post("/v1/search", json={"query": "x", "surprise": 1}), 422),
        (http.post("/v1/search", json=["query"]), 422),
        (http.post("/v1/search", json={"query": "x", "filters": {"colour": "red"}}), 400),
        (http.post("/v1/search", json={"query": "   "}), 400),
        (http.post("/v1/ask", json={"question": 42}), 422),
        (http.get("/v1/memory"), 422),
        (http.get("/v1/documents", params={"limit": "-1"}), 422),
        (http.get("/v1/documents", params={"status": "weird"}), 422),
        (http.get("/v1/documents", params={"tag": "novalue"}), 400),
        (http.get("/v1/documents/not-a-real-id"), 404),
        (http.get("/v1/documents/..%2F..%2Fetc%2Fpasswd"), 404),
        (http.get("/v1/documents/bad$id"), 422),
        (http.get("/v1/documents/00000000-0000-0000-0000-000000000000/raw"), 404),
        (http.delete("/v1/documents/00000000-0000-0000-0000-000000000000"), 404),
        (http.get("/v1/events", params={"since": "yesterday"}), 422),
        (http.get("/v1/events", params={"since": "2024-01-01T00:00:00"}), 400),
        (http.get("/v1/events", params={"type": "bad type!"}), 400),
        (http.get("/v1/nowhere"), 404),
        (http.post("/v1/documents", content=b"raw", headers={"Content-Type": "text/plain"}), 400),
        (http.post("/v1/documents", files={"file": ("../evil.txt", b"x")}), 400),
        (http.post("/v1/documents", files={"file": ("..\\evil.txt", b"x")}), 400),
        (http.post("/v1/documents", files={"file": ("..", b"x")}), 400),
        (http.post("/v1/documents", files={"other": ("a.txt", b"x")}), 400),
        (http.post("/v1/documents", files={"file": ("a.txt", b"x")}, data={"tag": "x"}), 400),
        (http.post("/v1/documents", files={"file": ("big.txt", b"x" * 1_200_000)}), 413),
        (
            http.post(
                "/v1/documents", files={"file": ("image.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)}
            ),
            422,
        ),
    ]
    for response, status in cases:
        request = response.request
        assert response.status_code == status, (request.method, request.url, response.text)
        problem = response.json()["error"]
        assert problem["status"] == status and problem["message"], response.text
    with pytest.raises(PayloadTooLargeError):
        writer.upload(b"y" * 1_100_000, name="large.txt")
    with pytest.raises(BadRequestError):
        writer.upload(b"z", name="sub/../../dir.txt")
    assert writer.health()["status"] == "ok"


@pytest.mark.parametrize(
    "name",
    ["..", ".", "a\\b", "x\x00y", "x\x1by", "", " ", "n" * 256, "/a", "a//b", "a/../b", "a/",
     "a/./b", "../a", "d/" * 600 + "x"],
)  # fmt: skip
def test_upload_names_are_relative_paths_of_plain_parts(name: str) -> None:
    with pytest.raises(InvalidInputError):
        check_name(name)
    assert check_name(" Résumé (final).PDF ") == "Résumé (final).PDF"
    assert check_name("notes/2024/x.md") == "notes/2024/x.md"


def test_auth_failures(server: Server) -> None:
    for key, error in ((None, UnauthorizedError), ("jns_nope_nope", UnauthorizedError)):
        with pytest.raises(error):
            JanusClient(server.url, key).list_documents()
    with pytest.raises(UnauthorizedError):
        JanusClient(server.url, server.extra["revoked"]).search("x")
    scoped = JanusClient(server.url, server.extra["scoped"])
    assert scoped.list_documents()["total"] >= 0
    with pytest.raises(ForbiddenError):
        scoped.search("Apollo")
    response = httpx.get(f"{server.url}/v1/documents", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")


def test_keys_are_created_listed_and_revoked_by_admins(
    server: Server, admin: JanusClient, writer: JanusClient
) -> None:
    created = admin.create_key("reader", name="dashboards")
    token = created["token"]
    assert token.startswith(created["prefix"] + "_") and created["tenant"] == "acme"
    assert (created["role"], created["name"], created["revoked_at"]) == (
        "reader",
        "dashboards",
        None,
    )
    listed = admin.list_keys()["keys"]
    assert created["id"] in {k["id"] for k in listed} and {k["tenant"] for k in listed} == {"acme"}
    assert not any(set(k) & {"token", "key_hash"} for k in listed) and token not in str(listed)
    with JanusClient(server.url, token) as reader:
        assert reader.list_documents()["total"] >= 0
        with pytest.raises(ForbiddenError, match="keys:manage"):
            reader.create_key("reader")
    with pytest.raises(ForbiddenError, match="keys:manage"):
        writer.list_keys()
    revoked = admin.revoke_key(created["prefix"])
    assert revoked["id"] == created["id"] and revoked["revoked_at"] is not None
    with pytest.raises(UnauthorizedError):  # at once, not after the server's key cache time
        JanusClient(server.url, token).list_documents()
    assert created["id"] not in {k["id"] for k in admin.list_keys()["keys"]}
    assert created["id"] in {k["id"] for k in admin.list_keys(revoked=True)["keys"]}

    with pytest.raises(BadRequestError, match="unknown role 'overlord'"):
        admin.create_key("overlord")
    with pytest.raises(BadRequestError, match="scopes can only narrow a role"):
        admin.create_key("reader", scopes=["events:verify"])
    with pytest.raises(NotFoundError, match="no API key"):
        admin.revoke_key("jns_00000000")
    # An admin key narrowed by scopes cannot mint a key wider than itself.
    narrowed = admin.create_key("admin", scopes=["keys:manage"])
    with JanusClient(server.url, narrowed["token"]) as limited:
        with pytest.raises(ForbiddenError, match="more permissions than its own"):
            limited.create_key("admin")
        assert limited.create_key("admin", scopes=["keys:manage"])["scopes"] == ["keys:manage"]

    created_events = admin.events(type="auth.key.created", limit=1000)["events"]
    assert created["id"] in {e["payload"]["key_id"] for e in created_events}
    revoked_events = admin.events(type="auth.key.revoked", limit=1000)["events"]
    assert [e["subject"] for e in revoked_events] == [created["prefix"]]
    assert all(e["actor"].startswith("key:jns_") for e in created_events + revoked_events)
    assert token not in str(created_events)

    async def other_tenant() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with AsyncJanusClient(server.url, server.key("acme", "admin")) as client:
            made = await client.create_key("agent", tenant="globex")
            everyone = await client.list_keys(all_tenants=True)
            gone = await client.revoke_key(made["id"], tenant="globex")
            return made, everyone, gone

    made, everyone, gone = asyncio.run(other_tenant())
    assert made["tenant"] == "globex" and {"acme", "globex"} <= {
        k["tenant"] for k in everyone["keys"]
    }
    assert gone["id"] == made["id"] and gone["revoked_at"] is not None
    with pytest.raises(NotFoundError):  # another tenant's key does not exist without ?tenant=
        admin.revoke_key(made["id"])


def test_dashboard_and_alerts_use_exposed_metrics(admin: JanusClient, apollo: object) -> None:
    """Every metric the Grafana dashboard and the alert rules query is one the server exposes."""
    admin.search("Apollo", mode="dense")
    exposed = admin.metrics()
    folder = Path(__file__).resolve().parents[2] / "deploy" / "observability"
    dashboard = json.loads((folder / "grafana-dashboard.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queries.append((folder / "janus-alerts.yml").read_text())
    names = {name for query in queries for name in re.findall(r"janus_[a-z_]+", query)}
    assert len(names) >= 8
    base = {re.sub(r"_(bucket|count|sum)$", "", name) for name in names}
    missing = {name for name in base if f"# HELP {name} " not in exposed}
    assert not missing, missing
