"""Real engines for the agent tests, and what the crash tests need around them.

The tiny random-weight GGUF runs in process (``llamacpp://``) and behind
llama.cpp's OpenAI-compatible server (``python -m llama_cpp.server``, the
conformance suite's ``LlamaServer``). ``StallingProxy`` sits in front of
that server and stops the first chat stream half-way, so a test can
SIGKILL a run while an agent is streaming. ``crash_plugin`` writes a
throw-away distribution whose entry points add side-effecting tools and a
hook that kills its own process at an exact point.
"""

from __future__ import annotations

import http.server
import os
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from conformance._llm_servers import LlamaServer
from conftest import migrated_database


@pytest.fixture(scope="module", name="tiny_model_path")
def tiny_model_path_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("llama_cpp", reason="the llm extra (llama-cpp-python) is not installed")
    from janus_stack.slots.llm.tiny_gguf import write_tiny_gguf  # noqa: PLC0415

    return write_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


def in_process(model: Path) -> str:
    """The llm URL of the tiny model run in process, deterministic (one thread, seed 0)."""
    return f"llamacpp://{model}?n_ctx=8192&threads=1&seed=0"


@pytest.fixture(scope="module", name="llama_server")
def llama_server_fixture(
    tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    with LlamaServer(tiny_model_path, tmp_path_factory.mktemp("llama-log"), n_ctx=8192) as server:
        yield server


@pytest.fixture(scope="module", name="module_pg_ledger")
def module_pg_ledger_fixture(pg_admin: str) -> Iterator[str]:
    """A migrated PostgreSQL database for one test module, dropped afterwards."""
    with migrated_database(pg_admin, f"janus_test_runs_{uuid.uuid4().hex[:12]}") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"], name="relational_url")
def relational_url_fixture(
    request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The run ledger of a test: the embedded SQLite file, or the module's PostgreSQL
    database; set in the environment, so commands run in process and in children use it."""
    if request.param == "sqlite":
        url = f"sqlite:///{home}/janus.db"
    else:
        url = str(request.getfixturevalue("module_pg_ledger"))
    monkeypatch.setenv("JANUS_RELATIONAL_URL", url)
    return url


def step_tokens(relational_url: str, run_id: str, step_key: str) -> str:
    """The text streamed so far by one step, read straight from the ledger (the run's
    process owns JANUS_HOME, so the test reads the table, not through ``Janus``)."""
    engine = create_engine(relational_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT text FROM run_tokens WHERE run_id = :r AND step_key = :k ORDER BY id"),
                {"r": run_id, "k": step_key},
            )
            return "".join(str(row[0]) for row in rows)
    finally:
        engine.dispose()


def newest_run_id(relational_url: str) -> str:
    engine = create_engine(relational_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT id FROM workflow_runs ORDER BY created_at DESC LIMIT 1")
            ).first()
            return "" if row is None else str(row[0])
    finally:
        engine.dispose()


class StallingProxy:
    """An HTTP proxy to a llama.cpp server whose first chat stream stalls half-way.

    The first chat stream (``POST …/chat/completions`` answered with
    ``text/event-stream``; a refused request does not count) relays ``events`` SSE events, ``gap``
    seconds apart (long enough for the engine to store streamed text), sets
    ``stalled`` and then sends nothing more until its client goes away. Every
    other request is relayed whole.
    """

    def __init__(self, upstream: str, *, events: int = 4, gap: float = 0.3) -> None:
        self.upstream = upstream.rstrip("/")
        self.events, self.gap = events, gap
        self.stalled = threading.Event()
        self._armed = threading.Lock()
        self._closed = threading.Event()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def url(self) -> str:
        return f"openai+{self.base}?model=tiny&timeout=30&retries=0"

    def disarm(self) -> None:
        """Relay every stream whole, the first one too."""
        self._armed.acquire(blocking=False)

    def close(self) -> None:
        self._closed.set()
        self.server.shutdown()
        self.server.server_close()

    def _relay(self, handler: http.server.BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        target = self.upstream + handler.path.removeprefix("/v1")
        chat = method == "POST" and handler.path.endswith("/chat/completions")
        with (
            httpx.Client(timeout=60) as client,
            client.stream(
                method, target, content=body, headers={"Content-Type": "application/json"}
            ) as response,
        ):
            kind = response.headers.get("content-type", "application/json")
            streaming = chat and response.status_code == 200 and "event-stream" in kind
            stall = streaming and self._armed.acquire(blocking=False)
            handler.send_response(response.status_code)
            handler.send_header("Content-Type", kind)
            handler.send_header("Connection", "close")
            handler.end_headers()
            if not stall:
                for piece in response.iter_raw():
                    handler.wfile.write(piece)
                return
            sent = 0
            for line in response.iter_lines():
                handler.wfile.write(line.encode() + b"\n")
                if line.startswith("data:"):
                    handler.wfile.write(b"\n")
                    handler.wfile.flush()
                    sent += 1
                    if sent >= self.events:
                        break
                    time.sleep(self.gap)
        self.stalled.set()
        self._closed.wait(120)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy._relay(self, "GET")

            def do_POST(self) -> None:
                proxy._relay(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


@pytest.fixture(name="stalling_proxy")
def stalling_proxy_fixture(llama_server: LlamaServer) -> Iterator[StallingProxy]:
    proxy = StallingProxy(llama_server.base)
    try:
        yield proxy
    finally:
        proxy.close()


CRASH_PLUGIN = '''
import os, signal
from pathlib import Path

def _kill_once(point):
    marker = Path(os.environ["JANUS_TEST_KILL_MARKER"])
    if os.environ.get("JANUS_TEST_KILL_AT") == point and marker.exists():
        marker.unlink()
        os.kill(os.getpid(), signal.SIGKILL)

def _append(label, key):
    with open(os.environ["JANUS_TEST_EFFECTS"], "a") as handle:
        handle.write(f"{label}\\t{key}\\n")

def effect(label: str, context=None) -> dict:
    """Append one line per call, deduplicated by the idempotency key."""
    with open(os.environ["JANUS_TEST_EFFECTS"] + ".calls", "a") as handle:
        handle.write(f"{label}\\t{context.idempotency_key}\\n")
    path = Path(os.environ["JANUS_TEST_EFFECTS"])
    done = path.read_text().splitlines() if path.exists() else []
    if not any(line.endswith("\\t" + context.idempotency_key) for line in done):
        _append(label, context.idempotency_key)
    _kill_once("inside:" + context.step_key)
    return {"label": label}

effect.janus_context = True
effect.janus_idempotent = True

def once(label: str, context=None) -> dict:
    """Append one line per execution: a side effect that cannot tell a repeat."""
    _append(label, context.idempotency_key)
    _kill_once("inside:" + context.step_key)
    return {"label": label}

once.janus_context = True

class Killer:
    """Kill this process once, at JANUS_TEST_KILL_AT = '<hook>:<step key>'."""

    def before_step(self, run_id, step_key, kind):
        _kill_once("before_step:" + step_key)

    def after_step(self, run_id, step_key, output):
        _kill_once("after_step:" + step_key)

    def before_tool(self, run_id, step_key, tool, key):
        _kill_once("before_tool:" + step_key)

    def after_tool(self, run_id, step_key, tool, key):
        _kill_once("after_tool:" + step_key)
'''


def crash_plugin(site: Path) -> Path:
    """Install the plugin (tools ``crash.effect``, idempotent, and ``crash.once``, not;
    the ``Killer`` hook) into ``site``, a folder to put on PYTHONPATH."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "janus_crash_plugin.py").write_text(textwrap.dedent(CRASH_PLUGIN))
    info = site / "janus_crash_plugin-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: janus-crash-plugin\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[janus_stack.tools]\ncrash.effect = janus_crash_plugin:effect\n"
        "crash.once = janus_crash_plugin:once\n\n"
        "[janus_stack.workflow_hooks]\nkiller = janus_crash_plugin:Killer\n"
    )
    return site


def crash_env(tmp_path: Path, home: Path) -> dict[str, str]:
    """The environment of a ``janus`` child with the crash plugin (JANUS_* of this process,
    e.g. the relational URL, are inherited)."""
    site = crash_plugin(tmp_path / "site")
    variables = dict(os.environ)
    variables.update(
        JANUS_HOME=str(home),
        PYTHONPATH=os.pathsep.join([str(site), variables.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        JANUS_TEST_EFFECTS=str(tmp_path / "effects.txt"),
        JANUS_TEST_KILL_MARKER=str(tmp_path / "kill-once"),
    )
    return variables


def effects(tmp_path: Path, file: str = "effects.txt") -> list[tuple[str, str]]:
    """(label, idempotency key) of every side effect that happened (of every invocation of
    ``crash.effect`` with ``file="effects.txt.calls"``)."""
    path = tmp_path / file
    lines = path.read_text().splitlines() if path.exists() else []
    return [(label, key) for label, _, key in (line.partition("\t") for line in lines)]
