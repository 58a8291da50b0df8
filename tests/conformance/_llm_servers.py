"""Servers for the llm conformance tests: a real llama.cpp server, and a replay server.

``LlamaServer`` runs llama-cpp-python's OpenAI-compatible server
(``python -m llama_cpp.server``) on 127.0.0.1 with the tiny random GGUF;
``chat_format="chatml-function-calling"`` gives it tool calling with
``tool_choice="auto"`` (its default format forces only a named tool).

``ReplayServer`` is a raw-socket HTTP/1.1 server for protocol edge cases the
real server does not produce on demand. It replays SSE bytes *recorded from
the real llama.cpp server in the same test session* (``record_stream``),
mutated per test: empty-content and role-only chunks, usage in the last
chunk, a missing ``[DONE]``, a connection cut or stalled mid-stream,
malformed JSON, error statuses. Each request takes the next queued
``Script`` (or the default one) and the server records every request body.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from conftest import free_port


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the test process dies, so no server outlives a run."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class LlamaServer:
    """``python -m llama_cpp.server`` on a free port; ``stop()`` or ``kill()`` it."""

    def __init__(
        self, model: Path, log_dir: Path, *, n_ctx: int = 4096, chat_format: str | None = None
    ) -> None:
        self.port = free_port()
        self.recorded = b""
        self.log_path = log_dir / f"llama-server-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--n_ctx",
                str(n_ctx),
                "--n_threads",
                "1",
                "--seed",
                "0",
                *(["--chat_format", chat_format] if chat_format else []),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def url(self) -> str:
        return f"openai+{self.base}?model=tiny&timeout=20&retries=1&backoff=0.05"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/models", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"llama_cpp.server not ready: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def __enter__(self) -> LlamaServer:
        """Started and ready: a fixture writes ``with LlamaServer(...) as server: yield server``."""
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def record_stream(base: str, body: dict[str, Any]) -> bytes:
    """The raw SSE body bytes the real server sends for ``body`` (de-chunked, undecoded)."""
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{base}/chat/completions", json=body) as response,
    ):
        response.raise_for_status()
        return b"".join(response.iter_raw())


def sse_events(raw: bytes) -> list[bytes]:
    """Split recorded SSE bytes into whole events (each ending in a blank line)."""
    text = raw.replace(b"\r\n", b"\n")
    return [event + b"\n\n" for event in text.split(b"\n\n") if event.strip()]


def event_json(event: bytes) -> dict[str, Any] | None:
    """The JSON of a ``data:`` event, or None for ``[DONE]`` and comments."""
    for line in event.splitlines():
        if line.startswith(b"data:"):
            data = line[5:].strip()
            if data == b"[DONE]":
                return None
            parsed: dict[str, Any] = json.loads(data)
            return parsed
    return None


def data_event(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {text}\n\n".encode()


# -- the replay server -----------------------------------------------------------


@dataclass
class Script:
    """How to answer one request.

    Attributes:
        status: the HTTP status.
        parts: body pieces, sent in order; a float is a pause in seconds.
        headers: extra response headers.
        content_type: of the body.
        cut: close the connection after the parts without ending the chunked body.
    """

    status: int = 200
    parts: list[bytes | float] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/event-stream"
    cut: bool = False


class ReplayServer:
    """A raw-socket HTTP/1.1 server answering requests from a queue of ``Script``s."""

    def __init__(self, default: Script | None = None) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.default = default or Script()
        self.queue: list[Script] = []
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self.models: Callable[[], Script] = lambda: Script(
            content_type="application/json",
            parts=[json.dumps({"object": "list", "data": [{"id": "replayed"}]}).encode()],
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def url(self, **options: str) -> str:
        query = {"model": "replayed", "timeout": "5", "retries": "2", "backoff": "0.01"}
        query.update(options)
        return f"openai+{self.base}?" + "&".join(f"{k}={v}" for k, v in query.items())

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [body for _, path, body in self.requests if path.endswith("/chat/completions")]

    def close(self) -> None:
        self._stop.set()
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                method, path, body = _read_request(conn)
            except (OSError, ValueError):
                return
            parsed = json.loads(body) if body else None
            self.requests.append((method, path, parsed))
            if path.endswith("/models"):
                script = self.models()
            else:
                script = self.queue.pop(0) if self.queue else self.default
            try:
                _play(conn, script)
            except OSError:
                return


def _read_request(conn: socket.socket) -> tuple[str, str, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            raise ValueError("connection closed before the headers")
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            break
        body += piece
    return method, path, body


def _play(conn: socket.socket, script: Script) -> None:
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 422: "Unprocessable Entity"}
    head = [
        f"HTTP/1.1 {script.status} {reason.get(script.status, 'Status')}",
        f"Content-Type: {script.content_type}",
        "Transfer-Encoding: chunked",
        "Connection: close",
        *(f"{k}: {v}" for k, v in script.headers.items()),
    ]
    conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    for part in script.parts:
        if isinstance(part, float):
            time.sleep(part)
            continue
        if part:
            conn.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
    if script.cut:
        conn.shutdown(socket.SHUT_RDWR)
        return
    conn.sendall(b"0\r\n\r\n")
