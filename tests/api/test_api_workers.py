"""``janus serve --workers 2``: refused on embedded stores, coherent on server backends.

Two worker processes each open their own context on the same servers:
PostgreSQL (a throwaway database), moto's S3 server, FalkorDB, Redis (a key
prefix of its own) and a Qdrant server (a collection of its own). A Qdrant
server is not one of this machine's services, so the multi-worker test runs
only when ``JANUS_TEST_QDRANT_URL`` is set and skips otherwise, even in CI
(the rule ``tests/conformance/test_vectors.py`` follows). The refusal test
needs no service and always runs.

Which worker answers is the kernel's choice per TCP connection, so each
client learns its worker's PID from ``/v1/system`` and keeps that keep-alive
connection; a PID read before and after a batch of calls proves the batch
stayed on one worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from api_server import JANUS, Server, home_env, make_keys, start_server, stop_server
from qdrant_client import QdrantClient
from typer.testing import CliRunner

from janus_stack.cli import app
from janus_stack.client import JanusClient, RateLimitedError
from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.urls import SlotURL
from services import (  # noqa: F401 - fixtures
    falkordb_url_fixture,
    moto_client_fixture,
    moto_endpoint_fixture,
    s3_url_fixture,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:Failed to obtain server version:UserWarning"),
    pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection:UserWarning"),
]

SERVER_ENV = "JANUS_TEST_QDRANT_URL"
WORKERS = 2
THREADS = 4
DOCS_PER_THREAD = 2
KEY_BURST = 80  # every call of a key counts, the PID probes (up to 2 x PROBES) included
PROBES = 20  # clients opened at most to reach a worker other than the ones to avoid
TENANT = "acme"
PEOPLE = ("Alice Johnson", "Robert Smith", "Maria Garcia", "David Chen")
PLACES = ("London", "Paris", "Berlin", "Tokyo")
LETTERS = str.maketrans("0123456789", "ghijklmnop")
SUBJECTS = ("glacier surveys", "tidal turbines", "beetle genomes", "sourdough yeast")


# -- the refusal (always runs) ------------------------------------------------------


@pytest.mark.parametrize(
    ("graph_url", "named"),
    [
        (None, "the vectors and graph slots are embedded"),
        ("falkordb://127.0.0.1:1?graph=x", "the vectors slot is embedded"),
    ],
)
def test_workers_refused_naming_the_single_writer_slots(
    tmp_path: Path, graph_url: str | None, named: str
) -> None:
    """A real ``janus serve`` process: non-zero exit and the embedded slots by name.

    The check runs before any store is opened, so the FalkorDB URL needs no server.
    """
    env = home_env(tmp_path)
    if graph_url is not None:
        env["JANUS_GRAPH_URL"] = graph_url
    result = subprocess.run(
        [JANUS, "serve", "--workers", "2", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "--workers 2 needs server backends" in result.stderr
    assert named in result.stderr, result.stderr
    assert not (tmp_path / "vectors").exists() and not (tmp_path / "graph").exists()


# -- the server-backed stack --------------------------------------------------------


def write_config(home: Path, slots: dict[str, str]) -> None:
    lines = ["[slots]", *(f"{slot} = {json.dumps(url)}" for slot, url in slots.items())]
    (home / "janus.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def drop_prefix(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


def drop_collection(vectors_url: str, collection: str) -> None:
    server = SlotURL.parse("vectors", vectors_url)
    client = QdrantClient(url=server.without_query(), api_key=server.query.get("api_key"))
    if client.collection_exists(collection):  # absent when the workers never started
        client.delete_collection(collection)
    client.close()


@pytest.fixture(name="stack")
def stack_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """Two workers on every server backend; keys ``t0``…``t3`` and ``limit`` (admins of acme)."""
    qdrant = os.environ.get(SERVER_ENV)
    if not qdrant:
        pytest.skip(f"no Qdrant server: set {SERVER_ENV}=http://host:6333 to run against one")
    ledger_url: str = request.getfixturevalue("pg_database")
    with Ledger(SlotURL.parse("relational", ledger_url)) as ledger:
        migrations.upgrade(ledger)
    redis_url: str = request.getfixturevalue("redis_url")
    graph_url: str = request.getfixturevalue("falkordb_url")
    objects_url: str = request.getfixturevalue("s3_url")
    prefix = f"janus_workers_{uuid.uuid4().hex[:8]}"
    vectors_url = f"{qdrant}{'&' if '?' in qdrant else '?'}collection={prefix}"
    home = tmp_path / "home"
    home.mkdir()
    write_config(
        home,
        {
            "relational": ledger_url,
            "objects": objects_url,
            "vectors": vectors_url,
            "graph": graph_url.split("?", maxsplit=1)[0] + f"?graph={prefix}",
            "cache": f"{redis_url}?prefix={prefix}",
        },
    )
    server: Server | None = None
    try:
        names = [f"t{i}" for i in range(THREADS)] + ["limit"]
        tokens = make_keys(home, {name: (TENANT, "admin", []) for name in names})
        server = start_server(
            home,
            "--workers", str(WORKERS),
            "--key-rate", "0.01", "--key-burst", str(KEY_BURST),
            "--tenant-rate", "1000", "--tenant-burst", "100000",
            timeout=300,
        )  # fmt: skip
        server.extra = tokens
        yield server
    finally:
        if server is not None:
            stop_server(server)
        drop_prefix(redis_url, prefix)
        drop_collection(vectors_url, prefix)


def worker_pid(client: JanusClient) -> int:
    return int(client.system()["pid"])


def client_on_worker(url: str, token: str, avoid: set[int]) -> tuple[JanusClient, int, int]:
    """A client whose connection a worker outside ``avoid`` serves: (client, pid, probes)."""
    for probe in range(1, PROBES + 1):
        client = JanusClient(url, token)
        pid = worker_pid(client)
        if pid not in avoid:
            return client, pid, probe
        client.close()
    pytest.fail(f"{PROBES} connections all went to workers {sorted(avoid)}")


def document(thread: int, n: int) -> str:
    i = thread * DOCS_PER_THREAD + n
    marker = uuid.uuid4().hex[:10].translate(LETTERS)  # one word for any keyword tokenizer
    return (
        f"Field note {marker}. {PEOPLE[i % 4]} studied {SUBJECTS[(i // 4) % 4]} "
        f"in {PLACES[(i + i // 4) % 4]} for the {i + 1}th season.\n"
    )


def upload_batch(client: JanusClient, texts: list[str]) -> list[tuple[str, str, int]]:
    """Upload ``texts`` on one worker: (document id, text, worker pid) each."""
    pid = worker_pid(client)
    found = []
    for i, text in enumerate(texts):
        uploaded = client.upload(text.encode(), name=f"note-{uuid.uuid4().hex[:8]}-{i}.txt")
        assert uploaded["status"] == "ingested", uploaded
        (document_id,) = uploaded["documents"]
        found.append((document_id, text, pid))
    assert worker_pid(client) == pid, "the batch moved to another worker"
    return found


def search_all(client: JanusClient, documents: list[tuple[str, str, int]]) -> tuple[int, set[str]]:
    """Search every document by its marker (keyword) and its text (dense): the ids found first."""
    pid = worker_pid(client)
    found = set()
    for document_id, text, _ in documents:
        marker = text.split()[2].rstrip(".")
        by_word = client.search(marker, mode="keyword", k=3)["hits"]
        by_meaning = client.search(text, mode="dense", k=3)["hits"]
        tops = {hits[0]["document"]["id"] if hits else None for hits in (by_word, by_meaning)}
        if tops == {document_id}:
            found.add(document_id)
    assert worker_pid(client) == pid, "the searches moved to another worker"
    return pid, found


def clients_on_both_workers(stack: Server) -> list[JanusClient]:
    """One client per thread key, their connections alternating between the two workers.

    Pinned again for each phase: uvicorn drops a connection idle for 5 s, and
    a client that reconnects may land on either worker.
    """
    clients: list[JanusClient] = []
    pids: list[int] = []
    for i in range(THREADS):
        avoid = {pids[-1]} if pids else set()
        client, pid, _ = client_on_worker(stack.url, stack.extra[f"t{i}"], avoid)
        clients.append(client)
        pids.append(pid)
    return clients


def check_ingest_and_search(stack: Server) -> list[str]:
    batches = [[document(t, n) for n in range(DOCS_PER_THREAD)] for t in range(THREADS)]
    uploaders = clients_on_both_workers(stack)
    with ThreadPoolExecutor(THREADS) as pool:
        uploaded = [d for batch in pool.map(upload_batch, uploaders, batches) for d in batch]
    for client in uploaders:
        client.close()
    ids = [document_id for document_id, _, _ in uploaded]
    assert len(set(ids)) == THREADS * DOCS_PER_THREAD
    assert len({origin for _, _, origin in uploaded}) == WORKERS
    searchers = clients_on_both_workers(stack)
    with ThreadPoolExecutor(THREADS) as pool:
        searched = list(pool.map(search_all, searchers, [uploaded] * THREADS))
    assert len({pid for pid, _ in searched}) == WORKERS
    for pid, found in searched:
        assert found == set(ids), f"worker {pid} missed {sorted(set(ids) - found)}"
        # Among what it found: documents the other worker ingested.
        assert any(origin != pid for _, _, origin in uploaded)
    assert searchers[0].list_documents(limit=50)["total"] == len(ids)
    for client in searchers:
        client.close()
    return ids


def check_shared_rate_limit(stack: Server) -> None:
    """The key's bucket is in Redis: both workers refuse once it is empty, not after 2 bursts."""
    token = stack.extra["limit"]
    first, pid, first_probes = client_on_worker(stack.url, token, set())
    second, _, second_probes = client_on_worker(stack.url, token, {pid})
    allowed = first_probes + second_probes
    refused: dict[int, RateLimitedError] = {}
    for i in range(3 * KEY_BURST):
        if len(refused) == WORKERS:
            break
        side = i % WORKERS
        try:
            (first, second)[side].list_documents(limit=1)
            allowed += 1
        except RateLimitedError as exc:
            refused[side] = exc
    first.close()
    second.close()
    assert len(refused) == WORKERS, f"{allowed} calls allowed, refusals only from {sorted(refused)}"
    # The bucket refills at 0.01/s: at most one token more than the burst in this test's time.
    assert KEY_BURST <= allowed <= KEY_BURST + 1
    assert all(exc.retry_after >= 1 and exc.type == "rate_limited" for exc in refused.values())
    raw = httpx.get(f"{stack.url}/v1/documents", headers={"Authorization": f"Bearer {token}"})
    assert raw.status_code == 429 and int(raw.headers["retry-after"]) >= 1


def test_two_workers_share_every_store(stack: Server) -> None:
    ids = check_ingest_and_search(stack)
    check_shared_rate_limit(stack)
    stop_server(stack)
    verified = CliRunner().invoke(app, ["verify", "--json"], env={"JANUS_HOME": str(stack.home)})
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.stdout)
    assert report["ok"] is True, report
    tenant = report["tenants"][TENANT]
    for store in ("objects", "vectors"):
        assert tenant[store]["found"] == tenant[store]["expected"] >= len(ids), tenant
