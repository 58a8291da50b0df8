"""A provider that hangs: a chain waits out its timeout and falls back; alone, the budget ends it.

``HungServer`` is a real HTTP server that speaks just enough of the OpenAI
API to be opened (``GET /v1/models``) and then accepts every chat request
without ever answering it, as an overloaded or wedged server does. The
fallback is llama.cpp in process on the tiny random GGUF.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engines import in_process, tiny_model_path_fixture  # noqa: F401 - fixtures
from workbench import (  # noqa: F401 - fixtures
    calls_fixture,
    execute,
    home_fixture,
    janus_fixture,
    registry_fixture,
    runs_fixture,
    toolbox_fixture,
    workflow_fixture,
    write,
)

from janus_stack.slots.llm.chain import chain_url
from janus_stack.workflows.runs import Runs
from janus_stack.workflows.spec import WorkflowSpec

Make = Callable[[str], WorkflowSpec]


class HungServer:
    """Lists one model, then holds every chat request open without a byte of answer."""

    def __init__(self) -> None:
        self.requests = 0
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"model": "hung", **options}.items())
        return f"openai+http://127.0.0.1:{self.port}/v1?{query}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        hung = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"object": "list", "data": [{"id": "hung"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hung._lock:
                    hung.requests += 1
                hung.release.wait()  # no status line, no headers: the client waits
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture(name="hung")
def hung_fixture() -> Iterator[HungServer]:
    server = HungServer()
    yield server
    server.close()


def agent(home: Path, name: str, model: str, **fields: Any) -> None:
    manifest = {"name": name, "instructions": f"You are {name}.", "model": model, **fields}
    write(home / "agents" / f"{name}.yaml", json.dumps(manifest))


def test_a_chain_falls_back_when_the_first_provider_hangs_until_its_timeout(
    home: Path, runs: Runs, workflow: Make, hung: HungServer, tiny_model_path: Path
) -> None:
    first = hung.url(timeout="1", retries="0")
    agent(home, "steady", chain_url(first, in_process(tiny_model_path)), budget={"max_steps": 2})
    spec = workflow("""
        name: steady
        steps: [{id: talk, kind: agent, agent: steady, input: "Say something."}]
    """)
    run = runs.store.run(execute(runs, spec))
    assert run.status == "done", run.error
    assert hung.requests >= 1  # the chat request reached it and was never answered
    output = runs.store.steps(run.id)["talk"].output
    assert output is not None and output["mode"] == "llm"
    assert output["provider"].startswith("llamacpp://")
    reason = output["fallbacks"][0]
    assert f":{hung.port}" in reason and "timeout" in reason.lower(), reason
    assert run.prompt_tokens > 0


def test_a_lone_provider_that_hangs_stops_the_agent_at_its_wall_budget(
    home: Path, runs: Runs, workflow: Make, hung: HungServer
) -> None:
    agent(
        home,
        "stuck",
        hung.url(retries="0"),  # its own timeout (60 s) is longer than the budget
        budget={"max_steps": 2, "max_wall_seconds": 1},
    )
    spec = workflow("""
        name: stuck
        steps: [{id: talk, kind: agent, agent: stuck, input: "Say something."}]
    """)
    run = runs.store.run(execute(runs, spec))
    assert hung.requests == 1
    assert run.status == "budget_exceeded", (run.status, run.error)
    assert run.error is not None and "max_wall_seconds=1" in run.error
    assert "agent stuck" in run.error
