"""``janus mcp`` driven by the MCP SDK's own client against real subprocesses.

In process on a JANUS_HOME (stdio and streamable HTTP), every session acting
as one API key: tools, document resources, a reader refused on ingest (and
the refusal in the event log), tenant isolation, bad keys refused at
start-up. Then the proxy mode against a real ``janus serve``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import httpx2
import pytest
from api_server import JANUS, free_port, home_env, make_keys, start_server, stop_server
from mcp import ClientSession, types
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from sqlalchemy import select

from janus_stack.api.keys import KeyStore
from janus_stack.client import JanusClient
from janus_stack.config import load_settings
from janus_stack.events import EventLog
from janus_stack.home_lock import read_owner
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Document

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOCS = sorted((EXAMPLES / "docs").glob("*.md"))
TOOLS = {"search", "ask", "memory", "ingest", "run_workflow", "run_status"}
T = TypeVar("T")


@dataclass
class Home:
    path: Path
    keys: dict[str, str]

    def ledger(self) -> Ledger:
        settings = load_settings(environ={"JANUS_HOME": str(self.path)}, cwd=self.path)
        return Ledger(settings.slot_url("relational"))

    def document_ids(self, tenant: str) -> list[str]:
        with self.ledger() as ledger, ledger.session() as session:
            return list(session.scalars(select(Document.id).where(Document.tenant_id == tenant)))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A home whose tenant acme holds the example documents; keys of acme and globex."""
    path = tmp_path_factory.mktemp("mcp-home")
    specs = {
        "acme:writer": ("acme", "writer", []),
        "acme:reader": ("acme", "reader", []),
        "globex:writer": ("globex", "writer", []),
        "acme:revoked": ("acme", "reader", []),
    }
    tokens = make_keys(path, specs)
    found = Home(path, tokens)
    with found.ledger() as ledger:
        KeyStore(ledger).revoke(tokens["acme:revoked"][:12])
    subprocess.run(
        [JANUS, "ingest", "--tenant", "acme", *map(str, DOCS)],
        env=home_env(path),
        cwd=path,
        check=True,
        capture_output=True,
        timeout=240,
    )
    return found


def local_server(home: Home, key: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=JANUS,
        args=[
            "mcp",
            "--api-key",
            key,
            "--agents-dir",
            str(EXAMPLES / "agents"),
            "--workflows-dir",
            str(EXAMPLES / "workflows"),
        ],
        env=home_env(home.path),
        cwd=str(home.path),
    )


def over_stdio(
    params: StdioServerParameters, log: Path, work: Callable[[ClientSession], Awaitable[T]]
) -> T:
    """Start the server, initialise a session, run ``work`` in it; the server exits after."""

    async def main() -> T:
        with log.open("a") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                return await work(session)

    return anyio.run(main)


def local_session(home: Home, key: str, work: Callable[[ClientSession], Awaitable[T]]) -> T:
    """``work`` in a session of ``janus mcp`` on ``home``; it must release JANUS_HOME after."""
    result = over_stdio(local_server(home, home.keys[key]), home.path / "mcp.log", work)
    assert read_owner(home.path) is None
    return result


async def call(session: ClientSession, name: str, **arguments: Any) -> types.CallToolResult:
    result = await session.call_tool(name, arguments)
    assert isinstance(result, types.CallToolResult)
    return result


def data(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    text = result.content[0]
    assert isinstance(text, types.TextContent)
    assert json.loads(text.text) == result.structured_content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def error_text(result: types.CallToolResult) -> str:
    assert result.is_error
    text = result.content[0]
    assert isinstance(text, types.TextContent)
    return text.text


def test_tools_and_document_resources_over_stdio(home: Home) -> None:
    async def work(session: ClientSession) -> None:
        listed = await session.list_tools()
        assert {tool.name for tool in listed.tools} == TOOLS
        assert all(tool.input_schema["required"] for tool in listed.tools)

        hits = data(await call(session, "search", query="Who commanded Apollo 8?", k=3))["hits"]
        assert hits and hits[0]["document"]["title"] == "Apollo 8"
        assert hits[0]["document"]["source"] == "apollo8.md"  # not the path it was read from
        answer = data(await call(session, "ask", question="Who commanded Apollo 8?"))
        assert answer["found"] and "Frank Borman" in answer["answer"] and answer["citations"]
        assert answer["citations"][0]["document"]["source"] == "apollo8.md"
        topic = data(await call(session, "memory", topic="Apollo 8"))
        assert topic["entity"]["name"] == "Apollo 8" and topic["chunks"]
        assert "apollo8.md" in {document["source"] for document in topic["documents"]}
        assert str(EXAMPLES) not in json.dumps([hits, answer, topic])

        note = {"title": "Lunar garden", "text": "The zorblat fern grew in the lunar garden."}
        stored = data(await call(session, "ingest", **note, tags={"kind": "note"}))
        assert stored["status"] == "ingested" and len(stored["documents"]) == 1
        document_id = stored["documents"][0]
        again = data(await call(session, "ingest", **note, tags={"kind": "note"}))
        assert again["status"] == "unchanged"
        found = data(await call(session, "search", query="zorblat", mode="keyword"))["hits"]
        assert [hit["document"]["id"] for hit in found] == [document_id]
        assert found[0]["document"]["source"] == "lunar-garden.md"
        by_source = {"source": "lunar-garden.md"}
        search = {"query": "lunar garden", "mode": "dense", "filters": by_source}
        filtered = data(await call(session, "search", **search))["hits"]
        assert {hit["document"]["id"] for hit in filtered} == {document_id}

        read = await session.read_resource(f"janus://documents/{document_id}")
        text, meta = read.contents
        assert isinstance(text, types.TextResourceContents)
        assert isinstance(meta, types.TextResourceContents)
        assert "zorblat fern" in text.text and text.text.startswith("Lunar garden")
        metadata = json.loads(meta.text)
        assert metadata["title"] == "Lunar garden" and metadata["tags"] == {"kind": "note"}
        assert metadata["tenant"] == "acme" and metadata["truncated"] is False

        resources = await session.list_resources()
        assert {r.title for r in resources.resources} == {
            "Apollo 8",
            "Saturn V",
            "Vostok 1",
            "Lunar garden",
        }
        later = await session.list_resources(params=types.PaginatedRequestParams(cursor="2"))
        assert [r.uri for r in later.resources] == [r.uri for r in resources.resources][2:]
        with pytest.raises(MCPError, match="did not come from resources/list"):
            await session.list_resources(params=types.PaginatedRequestParams(cursor="x"))
        with pytest.raises(MCPError, match="has no document"):
            await session.read_resource("janus://documents/0000-not-a-document")
        templates = await session.list_resource_templates()
        assert templates.resource_templates[0].uri_template == "janus://documents/{document_id}"

        assert "'k'" in error_text(await call(session, "search", query="moon", k=1000))
        assert "'title'" in error_text(await call(session, "ingest", text="untitled"))

    local_session(home, "acme:writer", work)


def test_run_workflow_reports_progress_and_status(home: Home) -> None:
    progress: list[tuple[float, str | None]] = []

    async def work(session: ClientSession) -> tuple[dict[str, Any], dict[str, Any]]:
        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, message))

        arguments = {"workflow": "research", "inputs": {"question": "Who commanded Apollo 8?"}}
        started = await session.call_tool("run_workflow", arguments, progress_callback=on_progress)
        assert isinstance(started, types.CallToolResult)
        run = data(started)
        status = data(await call(session, "run_status", run_id=run["run_id"]))
        missing = error_text(await call(session, "run_workflow", workflow="nowhere"))
        assert "no workflow named 'nowhere'" in missing
        return run, status

    run, status = local_session(home, "acme:writer", work)
    assert run["status"] == "done" and run["finished"]
    assert "Frank Borman" in run["output"]["summary"]
    assert [step["status"] for step in run["steps"]].count("done") >= 2
    assert status == run
    assert progress and progress[-1][0] >= 2 and "done" in str(progress[-1][1])


def test_reader_is_refused_ingest_and_the_refusal_is_logged(home: Home) -> None:
    before = home.document_ids("acme")

    async def work(session: ClientSession) -> str:
        assert data(await call(session, "search", query="Saturn V rocket"))["hits"]
        return error_text(await call(session, "ingest", title="Sneaky", text="Not allowed."))

    refused = local_session(home, "acme:reader", work)
    assert "role 'reader' does not grant 'documents:write'" in refused
    assert home.document_ids("acme") == before
    with home.ledger() as ledger:
        events = EventLog(ledger).query(tenant="acme", type="auth.refused", actor="mcp")
    refusals = [e for e in events if e.payload["tool"] == "ingest"]
    assert len(refusals) == 1
    assert refusals[0].payload["permission"] == "documents:write"
    assert refusals[0].subject == home.keys["acme:reader"][:12]


def test_a_key_sees_only_its_own_tenant(home: Home) -> None:
    acme_document = home.document_ids("acme")[0]

    async def work(session: ClientSession) -> None:
        assert (await session.list_resources()).resources == []
        hits = data(await call(session, "search", query="Apollo 8 Frank Borman Moon"))["hits"]
        assert hits == []
        assert not data(await call(session, "ask", question="Who commanded Apollo 8?"))["found"]
        with pytest.raises(MCPError, match="has no document"):
            await session.read_resource(f"janus://documents/{acme_document}")

    local_session(home, "globex:writer", work)


def mcp_command(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    """``janus mcp ARGS`` on ``home`` with nothing on stdin: what it does before serving."""
    return subprocess.run(
        [JANUS, "mcp", *args],
        check=False,
        env=home_env(home.path),
        cwd=home.path,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("jns_00000000_unknown", "malformed, unknown or revoked"),
        ("revoked", "malformed, unknown or revoked"),
        ("", "none was given"),
    ],
)
def test_a_bad_key_is_refused_at_start_up(home: Home, key: str, message: str) -> None:
    token = home.keys["acme:revoked"] if key == "revoked" else key
    done = mcp_command(home, "--api-key", token)
    assert done.returncode == 1, done.stderr
    assert message in done.stderr and done.stdout == ""
    assert read_owner(home.path) is None


def test_the_rate_limit_options_set_the_buckets(home: Home) -> None:
    params = local_server(home, home.keys["acme:reader"])
    params.args += ["--key-rate", "0.001", "--key-burst", "1"]  # one call, then no refill

    async def work(session: ClientSession) -> tuple[types.CallToolResult, types.CallToolResult]:
        return await call(session, "search", query="Apollo"), await call(
            session, "search", query="Apollo"
        )

    first, second = over_stdio(params, home.path / "mcp.log", work)
    assert data(first)["hits"]
    assert error_text(second).startswith("search: rate limit of this key exceeded; retry in ")
    assert read_owner(home.path) is None


def test_rate_limits_are_the_servers_own_in_proxy_mode(home: Home) -> None:
    done = mcp_command(
        home, "--api-key", home.keys["acme:reader"], "--server", "http://127.0.0.1:9",
        "--tenant-rate", "5",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "rate limits are the server's own" in done.stderr


def test_a_signal_stops_stdio_and_releases_the_home(home: Home) -> None:
    """SIGTERM while the client still holds stdin open: closed cleanly, not left hanging."""
    log = home.path / "mcp-signal.log"
    with log.open("wb") as errors:
        process = subprocess.Popen(
            [JANUS, "mcp"],
            env={**home_env(home.path), "JANUS_API_KEY": home.keys["acme:reader"]},
            cwd=home.path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    try:
        deadline = time.monotonic() + 120
        while "serving on stdio" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert read_owner(home.path) is not None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert read_owner(home.path) is None


@pytest.fixture
def http_server(home: Home) -> Iterator[str]:
    port = free_port()
    with (home.path / "mcp-http.log").open("ab") as log:
        process = subprocess.Popen(
            [JANUS, "mcp", "--transport", "http", "--port", str(port)],
            env={**home_env(home.path), "JANUS_API_KEY": home.keys["acme:reader"]},
            cwd=home.path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, (home.path / "mcp-http.log").read_text()
        try:
            if httpx.post(url, json={}, timeout=1).status_code == 401:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "janus mcp --transport http did not start"
        time.sleep(0.2)
    try:
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
        assert read_owner(home.path) is None  # the context was closed, the lock released


def test_streamable_http_needs_the_key_and_serves_the_tools(home: Home, http_server: str) -> None:
    wrong = httpx.post(http_server, json={}, headers={"Authorization": "Bearer jns_x"})
    assert wrong.status_code == 401
    assert httpx.post(http_server, json={}).json()["error"]["status"] == 401

    async def main() -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {home.keys['acme:reader']}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=120) as client,
            streamable_http_client(http_server, http_client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            assert {t.name for t in (await session.list_tools()).tools} == TOOLS
            refused = error_text(await call(session, "run_workflow", workflow="research"))
            assert "does not grant 'runs:start'" in refused
            return data(await call(session, "search", query="Yuri Gagarin", k=2))

    hits = anyio.run(main)["hits"]
    assert hits[0]["document"]["title"] == "Vostok 1"


def test_proxy_mode_through_janus_serve(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("mcp-proxy-home")
    tokens = make_keys(
        path,
        {
            "acme:writer": ("acme", "writer", []),
            "acme:reader": ("acme", "reader", []),
            "globex:reader": ("globex", "reader", []),
        },
    )
    served = start_server(path)
    try:
        with JanusClient(served.url, tokens["acme:writer"], timeout=120) as writer:
            uploaded = writer.upload(DOCS[0])
        document_id = uploaded["documents"][0]

        def proxy(key: str) -> StdioServerParameters:
            return StdioServerParameters(
                command=JANUS,
                args=["mcp", "--server", served.url, "--api-key", key],
                env=home_env(path / "elsewhere"),
                cwd=str(path),
            )

        async def as_reader(session: ClientSession) -> None:
            hits = data(await call(session, "search", query="Who commanded Apollo 8?"))["hits"]
            assert hits[0]["document"]["id"] == document_id
            refused = error_text(await call(session, "ingest", title="No", text="Not mine."))
            assert "does not grant 'documents:write'" in refused and served.url in refused
            listed = await session.list_resources()
            assert [r.uri for r in listed.resources] == [f"janus://documents/{document_id}"]
            read = await session.read_resource(listed.resources[0].uri)
            text = read.contents[0]
            assert isinstance(text, types.TextResourceContents)
            assert "Frank Borman commanded Apollo 8" in text.text

        async def as_other_tenant(session: ClientSession) -> None:
            assert data(await call(session, "search", query="Apollo 8"))["hits"] == []
            with pytest.raises(MCPError, match="has no document"):
                await session.read_resource(f"janus://documents/{document_id}")

        log = path / "mcp.log"
        over_stdio(proxy(tokens["acme:reader"]), log, as_reader)
        over_stdio(proxy(tokens["globex:reader"]), log, as_other_tenant)
        with JanusClient(served.url, tokens["acme:writer"]) as writer:
            assert writer.list_documents()["total"] == 1  # the refused ingest stored nothing
    finally:
        stop_server(served)
