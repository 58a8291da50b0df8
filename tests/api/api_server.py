"""A real ``janus serve`` subprocess per test module, on 127.0.0.1, with its own JANUS_HOME.

Keys are created in the home's ledger before the server starts (the ledger
is not covered by the JANUS_HOME lock); the server is stopped with SIGTERM
and must leave JANUS_HOME's lock released, which proves the graceful
shutdown closed every store.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from janus_stack.api.keys import KeyStore
from janus_stack.config import load_settings
from janus_stack.home_lock import read_owner
from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger

JANUS = str(Path(sys.executable).with_name("janus"))
ROLES = ("admin", "writer", "reader", "agent")
TENANTS = ("acme", "globex")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
APPROVE = """\
name: approve
description: Ask a human, then summarise the answer.
inputs:
  topic: {description: "What to approve."}
steps:
  - {id: ask, kind: human, prompt: "Approve {{ inputs.topic }}?"}
  - {id: summary, kind: agent, agent: summariser, input: "{{ steps.ask.output.text }}"}
output:
  answer: "{{ steps.ask.output.text }}"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def home_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JANUS_")}
    env["JANUS_HOME"] = str(home)
    return env


@dataclass
class Server:
    url: str
    home: Path
    process: subprocess.Popen[bytes]
    keys: dict[tuple[str, str], str] = field(default_factory=dict)  # (tenant, role) -> token
    extra: dict[str, str] = field(default_factory=dict)

    def key(self, tenant: str, role: str) -> str:
        return self.keys[(tenant, role)]

    def log(self) -> str:
        return (self.home / "serve.log").read_text(errors="replace")


def make_keys(home: Path, specs: dict[str, tuple[str, str, list[str]]]) -> dict[str, str]:
    """name -> token for keys (tenant, role, scopes), written to the home's ledger."""
    settings = load_settings(environ={"JANUS_HOME": str(home)}, cwd=home)
    tokens = {}
    with Ledger(settings.slot_url("relational")) as ledger:
        migrations.ensure_current(ledger)
        store = KeyStore(ledger)
        for name, (tenant, role, scopes) in specs.items():
            tokens[name] = store.create(tenant=tenant, role=role, scopes=scopes, name=name)[1]
    return tokens


def start_server(home: Path, *args: str, timeout: float = 90.0) -> Server:
    port = free_port()
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen(
        [JANUS, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        env=home_env(home),
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    server = Server(url=url, home=home, process=process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"janus serve exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"janus serve did not become healthy in {timeout} s:\n{server.log()}")


def start_workflow_server(
    home: Path, specs: dict[str, tuple[str, str, list[str]]]
) -> tuple[Server, dict[str, str]]:
    """``janus serve`` running the example agents and workflows, plus ``approve`` (a human
    step) in ``home``; returns the server and the tokens of the keys made from ``specs``."""
    (home / "workflows").mkdir()
    (home / "workflows" / "approve.yaml").write_text(APPROVE)
    tokens = make_keys(home, specs)
    started = start_server(
        home,
        "--agents-dir",
        str(EXAMPLES / "agents"),
        "--workflows-dir",
        str(EXAMPLES / "workflows"),
    )
    return started, tokens


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
            pytest.fail(f"janus serve did not stop on SIGTERM:\n{server.log()}")
    # uvicorn re-raises the captured SIGTERM after its graceful shutdown.
    assert server.process.returncode in (0, -signal.SIGTERM), server.log()
    # The lifespan closed the context: the JANUS_HOME lock was released, not just dropped.
    assert read_owner(server.home) is None, server.log()


@pytest.fixture(scope="module", name="server")
def server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shared server: tenants acme and globex with a key of every role each."""
    home = tmp_path_factory.mktemp("api-home")
    specs = {f"{t}:{r}": (t, r, []) for t in TENANTS for r in ROLES}
    specs["acme:scoped"] = ("acme", "writer", ["documents:read"])
    specs["acme:revoked"] = ("acme", "reader", [])
    tokens = make_keys(home, specs)
    settings = load_settings(environ={"JANUS_HOME": str(home)}, cwd=home)
    with Ledger(settings.slot_url("relational")) as ledger:
        KeyStore(ledger).revoke(tokens["acme:revoked"][:12])
    started = start_server(home, "--max-upload-mb", "1")
    started.keys = {(t, r): tokens[f"{t}:{r}"] for t in TENANTS for r in ROLES}
    started.extra = {"scoped": tokens["acme:scoped"], "revoked": tokens["acme:revoked"]}
    try:
        yield started
    finally:
        stop_server(started)
