"""Agents, workflows and runs over a real ``janus serve``: SSE, WebSocket, steering, authz.

The server runs the example agents (``--agents-dir examples/agents``) and
finds workflows by name in ``examples/workflows`` and in JANUS_HOME/workflows
(where this module writes ``approve``, a workflow with a human step). Runs
execute on the server's own inline queue workers, as ``janus run`` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_server import APPROVE, EXAMPLES, Server, start_workflow_server, stop_server
from sqlalchemy import insert

from janus_stack.client import (
    AsyncJanusClient,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    JanusClient,
    NotFoundError,
    RunEvent,
    UnauthorizedError,
)
from janus_stack.config import load_settings
from janus_stack.ledger.database import Ledger
from janus_stack.workflows.records import CALLS, INTERRUPTED, RETRY

QUESTION = {"question": "Who commanded Apollo 8?"}
ROLES = ("admin", "writer", "reader", "agent")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    specs = {f"{t}:{r}": (t, r, []) for t in ("acme", "globex") for r in ROLES}
    specs["acme:readonly-writer"] = ("acme", "writer", ["runs:read"])
    started, tokens = start_workflow_server(tmp_path_factory.mktemp("runs-home"), specs)
    started.keys = {tuple(name.split(":")): token for name, token in tokens.items()}  # type: ignore[misc]
    try:
        yield started
    finally:
        stop_server(started)


def client(server: Server, role: str, tenant: str = "acme") -> JanusClient:
    return JanusClient(server.url, server.key(tenant, role), timeout=30)


@pytest.fixture(scope="module")
def writer(server: Server) -> Iterator[JanusClient]:
    with client(server, "writer") as c:
        for doc in sorted((EXAMPLES / "docs").glob("*.md")):
            assert c.upload(doc)["status"] in ("ingested", "unchanged")
        yield c


def wait_for(
    c: JanusClient, run_id: str, statuses: tuple[str, ...], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = c.get_run(run_id)
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.1)


def kinds(events: list[RunEvent]) -> list[str]:
    return [e.kind for e in events]


def test_agents_and_validation(writer: JanusClient) -> None:
    listed = writer.list_agents()
    names = {a["name"] for a in listed["agents"]}
    assert {"researcher", "summariser", "writer", "critic", "editor"} <= names
    assert all(a["valid"] for a in listed["agents"]) and "memory.ask" in listed["tools"]
    assert writer.get_agent("researcher")["tools"] == ["memory.ask", "memory.search"]
    with pytest.raises(NotFoundError, match="no agent named 'nobody'"):
        writer.get_agent("nobody")
    ok = writer.validate_agent(EXAMPLES / "agents" / "critic.yaml")
    assert ok["ok"] and ok["agent"]["name"] == "critic"
    bad = writer.validate_agent("name: x\ninstructions: hi\ntools: [no.such.tool]\n")
    assert not bad["ok"]
    assert (
        bad["problems"][0]["line"] == 3
        and "unknown tool 'no.such.tool'" in bad["problems"][0]["message"]
    )
    good = writer.validate_workflow(EXAMPLES / "workflows" / "research.yaml")
    assert good == {
        "ok": True,
        "problems": [],
        "workflow": {"name": "research", "inputs": ["question"], "steps": 4},
    }
    broken = writer.validate_workflow(APPROVE.replace("agent: summariser", "agent: ghost"))
    assert not broken["ok"]
    assert (
        "unknown agent 'ghost'" in broken["problems"][0]["message"]
        and broken["problems"][0]["line"] == 7
    )
    syntax = writer.validate_workflow("name: [unclosed\n")
    assert not syntax["ok"] and "not valid YAML/JSON" in syntax["problems"][0]["message"]
    with pytest.raises(BadRequestError, match="empty"):
        writer.validate_workflow("")


def test_research_run_over_sse(writer: JanusClient) -> None:
    run = writer.start_run("research", inputs=QUESTION)
    assert run["status"] == "queued" and run["workflow"] == "research" and run["tenant"] == "acme"
    events = list(writer.stream_run(run["id"]))
    assert events[-1].kind == "end" and events[-1].data["status"] == "done"
    assert "token" in kinds(events) and "run" in kinds(events)
    types = [e.data["type"] for e in events if e.kind == "event"]
    assert types[0] == "workflow.run.created" and "workflow.run.done" in types
    text = "".join(e.data["text"] for e in events if e.kind == "token")
    assert "Borman" in text
    final = events[-1].data
    assert final["output"]["question"] == QUESTION["question"] and final["output"]["citations"]
    assert [s["key"] for s in final["steps"]] == ["research", "found", "summarise"]
    # The extractive fallback counts no model tokens; the usage is reported all the same.
    assert set(final["usage"]) >= {"prompt_tokens", "completion_tokens", "cost", "elapsed_s"}
    assert final["tool_calls"] and final["tool_calls"][0]["tool"].startswith("memory.")
    detail = writer.get_run(run["id"])
    assert detail["status"] == "done" and detail["steps"] == final["steps"]
    # A stream of a finished run replays it; a cursor skips what was seen.
    seq = max(e.data["seq"] for e in events if e.kind == "event")
    token = max(e.data["id"] for e in events if e.kind == "token")
    rest = list(writer.stream_run(run["id"], after_event=seq, after_token=token))
    assert kinds(rest) == ["run", "end"]
    page = writer.list_runs(limit=1)
    assert page["runs"][0]["id"] == run["id"]
    assert writer.list_runs(workflow="research", status="done")["runs"]


def test_research_run_over_websocket_sync_and_async(server: Server, writer: JanusClient) -> None:
    run = writer.start_run("research", inputs=QUESTION)
    with writer.run_socket(run["id"]) as socket:
        events = list(socket)
    assert events[-1].kind == "end" and events[-1].data["status"] == "done"
    assert "token" in kinds(events)
    assert "workflow.run.done" in [e.data["type"] for e in events if e.kind == "event"]

    async def follow() -> tuple[list[RunEvent], list[RunEvent]]:
        async with AsyncJanusClient(server.url, server.key("acme", "agent")) as agent:
            started = await agent.start_run("research", inputs=QUESTION)
            async with agent.run_socket(started["id"]) as socket:
                over_ws = [e async for e in socket]
            over_sse = [e async for e in agent.stream_run(started["id"])]
            return over_ws, over_sse

    over_ws, over_sse = asyncio.run(follow())
    assert over_ws[-1].data["status"] == "done" and over_sse[-1].data["status"] == "done"
    assert [e.data for e in over_ws if e.kind == "token"] == [
        e.data for e in over_sse if e.kind == "token"
    ]


def test_disconnecting_mid_stream_does_not_stop_the_run(
    server: Server, writer: JanusClient
) -> None:
    first = writer.start_run("draft_critique_revise", inputs={"topic": "Apollo 8"})
    for _event in writer.stream_run(first["id"]):
        break  # hang up after the first event
    second = writer.start_run("research", inputs=QUESTION)
    with writer.run_socket(second["id"]) as socket:
        next(iter(socket))
    for run in (first, second):
        assert wait_for(writer, run["id"], ("done", "failed"))["status"] == "done"
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_pause_feedback_resume_cancel(server: Server, writer: JanusClient) -> None:
    run = writer.start_run("approve", inputs={"topic": "the launch"})
    events = list(writer.stream_run(run["id"]))  # SSE ends when the run stops: paused
    assert events[-1].data["status"] == "paused" and events[-1].data["waiting_for"] == "ask"
    assert any(e.kind == "event" and e.data["type"] == "workflow.step.waiting" for e in events)
    assert writer.pause_run(run["id"])["status"] == "paused"
    noted = writer.run_feedback(run["id"], "Approved: go for launch")
    assert noted["resumed"] is False and noted["run"]["status"] == "paused"
    assert writer.resume_run(run["id"])["status"] == "queued"
    done = list(writer.stream_run(run["id"]))[-1].data
    assert done["status"] == "done" and done["output"] == {"answer": "Approved: go for launch"}
    assert done["feedback"][0]["actor"].startswith("key:jns_")
    with pytest.raises(ConflictError, match="is done; it cannot be paused") as finished:
        writer.pause_run(run["id"])
    assert finished.value.status == 409 and finished.value.type == "conflict"
    assert finished.value.details == {"run": run["id"], "state": "done"}
    with pytest.raises(ConflictError, match="only paused, failed or interrupted runs resume"):
        writer.resume_run(run["id"])

    # Over the WebSocket: answer the waiting step and resume in one message.
    second = writer.start_run("approve", inputs={"topic": "the landing"})
    seen: list[RunEvent] = []
    with writer.run_socket(second["id"]) as socket:
        for event in socket:
            seen.append(event)
            if event.kind == "run" and event.data["status"] == "paused":
                socket.feedback("Landing approved", resume=True)
    assert {"kind": "feedback", "resumed": True} in [
        {"kind": e.kind, **e.data} for e in seen if e.kind == "feedback"
    ]
    assert seen[-1].data["status"] == "done"
    assert seen[-1].data["output"] == {"answer": "Landing approved"}

    third = writer.start_run("approve", inputs={"topic": "the abort"})
    wait_for(writer, third["id"], ("paused",))
    assert writer.cancel_run(third["id"])["status"] == "cancelled"
    with pytest.raises(ConflictError, match="already cancelled"):
        writer.cancel_run(third["id"])
    with pytest.raises(ConflictError, match="only paused, failed or interrupted runs resume"):
        writer.resume_run(third["id"])
    with pytest.raises(ConflictError, match="is cancelled; it cannot be paused") as cancelled:
        writer.pause_run(third["id"])
    assert cancelled.value.details == {"run": third["id"], "state": "cancelled"}
    raw = httpx.post(
        f"{server.url}/v1/runs/{third['id']}/resume",
        headers={"Authorization": f"Bearer {server.key('acme', 'writer')}"},
    )
    assert raw.status_code == 409
    problem = raw.json()["error"]
    assert (problem["status"], problem["type"]) == (409, "conflict")
    assert (problem["run"], problem["state"]) == (third["id"], "cancelled")
    assert problem["message"].startswith(f"run {third['id']} is cancelled")
    assert list(writer.stream_run(third["id"]))[-1].data["status"] == "cancelled"


def test_resume_can_rerun_interrupted_tool_calls(server: Server, writer: JanusClient) -> None:
    """A crash cut a call of a tool that is not idempotent: resuming over HTTP re-arms it
    only when asked to (``janus runs resume --rerun-interrupted`` on the server's machine)."""
    run = writer.start_run("approve", inputs={"topic": "the payment"})
    wait_for(writer, run["id"], ("paused",))
    key = f"{run['id']}:ask:0:interrupted"
    settings = load_settings(environ={"JANUS_HOME": str(server.home)}, cwd=server.home)
    with Ledger(settings.slot_url("relational")) as ledger, ledger.engine.begin() as connection:
        connection.execute(
            insert(CALLS).values(
                idempotency_key=key, run_id=run["id"], step_key="ask", tool="crash.once",
                arguments={}, status=INTERRUPTED, executions=1,
            )
        )  # fmt: skip

    def call_status() -> str:
        return str(
            next(c for c in writer.get_run(run["id"])["tool_calls"] if c["key"] == key)["status"]
        )

    assert writer.resume_run(run["id"])["status"] == "queued"
    wait_for(writer, run["id"], ("paused",))
    assert call_status() == INTERRUPTED
    assert writer.resume_run(run["id"], rerun_interrupted=True)["status"] == "queued"
    wait_for(writer, run["id"], ("paused",))
    assert call_status() == RETRY
    resumed = writer.events(type="workflow.run.resumed", subject=f"run:{run['id']}")["events"]
    assert [e["payload"].get("rerun_interrupted") for e in resumed] == [None, 1]

    headers = {"Authorization": f"Bearer {server.key('acme', 'writer')}"}
    for body in ({"rerun_interrupted": "perhaps"}, {"rerun": True}):
        raw = httpx.post(f"{server.url}/v1/runs/{run['id']}/resume", json=body, headers=headers)
        assert 400 <= raw.status_code < 500 and "rerun" in raw.text, raw.text
    reader = client(server, "reader")
    with pytest.raises(ForbiddenError, match="runs:control"):
        reader.resume_run(run["id"], rerun_interrupted=True)
    assert writer.cancel_run(run["id"])["status"] == "cancelled"


def test_bad_input_names_the_problem(server: Server, writer: JanusClient) -> None:
    with pytest.raises(NotFoundError, match="no workflow named 'nowhere'"):
        writer.start_run("nowhere", inputs=QUESTION)
    with pytest.raises(BadRequestError, match="give a workflow name"):
        writer.start_run("../etc/passwd")
    with pytest.raises(BadRequestError, match="unknown agent 'ghost'"):
        writer.start_run(
            spec=APPROVE.replace("agent: summariser", "agent: ghost"), inputs={"topic": "x"}
        )
    with pytest.raises(BadRequestError, match="missing input"):
        writer.start_run("research")
    with pytest.raises(BadRequestError, match="unknown input"):
        writer.start_run("research", inputs={**QUESTION, "colour": "blue"})
    with pytest.raises(BadRequestError, match="exactly one of workflow"):
        writer.start_run()
    with pytest.raises(BadRequestError, match="steps: field required"):
        writer.start_run(spec={"name": "empty"})
    with pytest.raises(NotFoundError, match="no run 'no-such-run'"):
        writer.get_run("no-such-run")
    with pytest.raises(BadRequestError, match="unknown status"):
        writer.list_runs(status="sleeping")
    # A posted spec runs like a named one.
    run = writer.start_run(spec=APPROVE, inputs={"topic": "posted"})
    assert wait_for(writer, run["id"], ("paused",))["waiting_for"] == "ask"
    writer.cancel_run(run["id"])
    with pytest.raises(UnauthorizedError):
        JanusClient(server.url, "jns_bogus_key").run_socket(run["id"])


# -- roles x tenants --------------------------------------------------------------------

ALLOWED = {
    "admin": {"agents", "start", "read", "control"},
    "writer": {"agents", "start", "read", "control"},
    "reader": {"agents", "read"},
    "agent": {"start", "read"},
}


def call(http: httpx.Client, route: str, run_id: str, params: dict[str, str]) -> httpx.Response:
    if route == "agents":
        return http.get("/v1/agents", params=params)
    if route == "validate":
        return http.post("/v1/workflows/validate", params=params, content=APPROVE)
    if route == "start":
        body = {"workflow": "approve", "inputs": {"topic": "matrix"}}
        return http.post("/v1/runs", params=params, json=body)
    if route == "list":
        return http.get("/v1/runs", params=params)
    if route == "get":
        return http.get(f"/v1/runs/{run_id}", params=params)
    if route == "stream":
        return http.get(f"/v1/runs/{run_id}/stream", params=params)
    if route == "feedback":
        return http.post(f"/v1/runs/{run_id}/feedback", params=params, json={"text": "noted"})
    if route == "pause":
        return http.post(f"/v1/runs/{run_id}/pause", params=params)
    raise AssertionError(route)


PERMISSION = {
    "agents": ("agents", 200),
    "validate": ("agents", 200),
    "start": ("start", 201),
    "list": ("read", 200),
    "get": ("read", 200),
    "stream": ("read", 200),
    "feedback": ("control", 200),
    "pause": ("control", 200),
}
BY_ID = {"get", "stream", "feedback", "pause"}


@pytest.mark.parametrize("role", ROLES)
def test_roles_and_tenants(server: Server, writer: JanusClient, role: str) -> None:
    own = writer.start_run("approve", inputs={"topic": "authz"})
    wait_for(writer, own["id"], ("paused",))
    for tenant in ("acme", "globex"):
        headers = {"Authorization": f"Bearer {server.key(tenant, role)}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            for route, (permission, ok) in PERMISSION.items():
                expected = ok if permission in ALLOWED[role] else 403
                if tenant == "globex" and route in BY_ID and expected != 403:
                    expected = 404  # another tenant's run does not exist for this key
                answer = call(http, route, own["id"], {})
                assert answer.status_code == expected, (tenant, role, route, answer.text)
                if route == "list" and expected == 200:
                    assert {r["tenant"] for r in answer.json()["runs"]} <= {tenant}
                # Naming the other tenant: only admins may.
                other = "globex" if tenant == "acme" else "acme"
                crossed = call(http, route, own["id"], {"tenant": other})
                wanted = 403 if role != "admin" else ok
                if role == "admin" and route in BY_ID and other == "globex":
                    wanted = 404
                assert crossed.status_code == wanted, (tenant, role, route, "?tenant", crossed.text)
    if role == "admin":  # the admin of globex reached acme's run through ?tenant=acme
        assert writer.get_run(own["id"])["feedback"]
    writer.cancel_run(own["id"])


def test_scopes_narrow_and_sockets_check_tenants(server: Server, writer: JanusClient) -> None:
    run = writer.start_run("approve", inputs={"topic": "scopes"})
    wait_for(writer, run["id"], ("paused",))
    with client(server, "readonly-writer") as narrow:
        assert narrow.get_run(run["id"])["status"] == "paused"
        with pytest.raises(ForbiddenError, match="runs:start"):
            narrow.start_run("approve", inputs={"topic": "x"})
        with pytest.raises(ForbiddenError, match="runs:control"):
            narrow.run_feedback(run["id"], "no")
    with client(server, "writer", "globex") as stranger:
        with pytest.raises(NotFoundError):
            stranger.run_socket(run["id"])
        with pytest.raises(NotFoundError):
            list(stranger.stream_run(run["id"]))
        assert run["id"] not in {r["id"] for r in stranger.list_runs(limit=200)["runs"]}
    with client(server, "agent") as agent:  # follows, but cannot steer, over the socket
        with agent.run_socket(run["id"]) as socket:
            stream = iter(socket)
            assert next(stream).kind in ("event", "run")
            socket.feedback("let me in", resume=True)
            refused = next(e for e in stream if e.kind in ("error", "feedback"))
        assert refused.kind == "error" and refused.data["error"]["status"] == 403
    writer.cancel_run(run["id"])
    refusals = writer.events(type="auth.refused", limit=500)["events"]
    assert any(e["payload"].get("permission") == "runs:control" for e in refusals)
