"""Who may read ``/metrics``: a key with ``metrics:read`` by default, or as the server is told.

Real ``janus serve`` processes: the default (``--metrics-auth key``), where a
scrape needs a key granting ``metrics:read`` and takes no rate token, so it
works while its tenant is at the limit; ``open``; and ``off`` with a separate
``--metrics-port`` listener that serves the same registry without a key.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_server import JANUS, Server, free_port, home_env, make_keys, start_server, stop_server

from janus_stack.client import ForbiddenError, JanusClient, UnauthorizedError

SPECS = {
    "scraper": ("acme", "admin", ["metrics:read"]),
    "writer": ("acme", "writer", []),
    "admin": ("ops", "admin", []),
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("metrics-access-home")
    return path, make_keys(path, SPECS)


@pytest.fixture
def serving(home: tuple[Path, dict[str, str]], request: pytest.FixtureRequest) -> Iterator[Server]:
    path, tokens = home
    server = start_server(path, "--no-warm", *request.param)
    server.extra.update(tokens)
    try:
        yield server
    finally:
        stop_server(server)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "serving", [("--tenant-rate", "0.01", "--tenant-burst", "2")], indirect=True
)
def test_by_default_metrics_need_a_key_granting_metrics_read(serving: Server) -> None:
    url = f"{serving.url}/metrics"
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.json()["error"]["type"] == "unauthorized"
    with pytest.raises(ForbiddenError, match="does not grant 'metrics:read'"):
        JanusClient(serving.url, serving.extra["writer"]).metrics()
    with pytest.raises(UnauthorizedError):
        JanusClient(serving.url, "jns_00000000_guessed").metrics()

    scraper = JanusClient(serving.url, serving.extra["scraper"])
    assert "janus_http_request_duration_seconds_bucket" in scraper.metrics()
    with pytest.raises(ForbiddenError):  # narrowed to metrics:read, it reads nothing else
        scraper.list_documents()

    # The tenant's bucket (burst 2) runs dry; its scraper still scrapes.
    statuses = [
        httpx.get(f"{serving.url}/v1/documents", headers=bearer(serving.extra["writer"]))
        for _ in range(3)
    ]
    assert [response.status_code for response in statuses] == [200, 200, 429]
    for _ in range(5):
        assert 'janus_rate_limited_total{scope="tenant"} 1.0' in scraper.metrics()

    admin = JanusClient(serving.url, serving.extra["admin"])
    refused = admin.events(type="auth.refused", all_tenants=True, limit=1000)["events"]
    on_metrics = [e["payload"] for e in refused if e["payload"]["route"] == "/metrics"]
    assert {p["reason"] for p in on_metrics} == {"missing_key", "permission", "invalid_key"}
    assert next(p for p in on_metrics if p["reason"] == "permission")["permission"] == (
        "metrics:read"
    )


@pytest.mark.parametrize("serving", [("--metrics-auth", "open")], indirect=True)
def test_open_metrics_ask_for_nothing(serving: Server) -> None:
    response = httpx.get(f"{serving.url}/metrics")
    assert response.status_code == 200 and "janus_event_log_length" in response.text


METRICS_PORT = free_port()


@pytest.mark.parametrize(
    "serving", [("--metrics-auth", "off", "--metrics-port", str(METRICS_PORT))], indirect=True
)
def test_a_separate_port_serves_them_without_a_key(serving: Server) -> None:
    gone = httpx.get(f"{serving.url}/metrics", headers=bearer(serving.extra["scraper"]))
    assert gone.status_code == 404 and "metrics port" in gone.json()["error"]["message"]
    assert httpx.get(f"{serving.url}/healthz").status_code == 200
    listener = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics")
    assert listener.status_code == 200
    # The same registry: it counted the API's requests, including the 404 just now.
    assert 'route="/metrics"' in listener.text and 'status="404"' in listener.text


def test_settings_that_cannot_work_are_refused(home: tuple[Path, dict[str, str]]) -> None:
    path, _tokens = home
    # An embedder that gives no token vectors cannot re-rank: refused before any slot opens.
    pooled = {
        "JANUS_EMBEDDINGS_URL": "openai+http://127.0.0.1:9/v1?model=m&dim=384",
        "JANUS_RERANK": "0.8",
    }
    cases = [
        (["--metrics-auth", "off"], {}, "leaves /metrics nowhere"),
        (["--metrics-auth", "sometimes"], {}, "sometimes"),
        (["--workers", "2", "--metrics-port", "9465"], {}, "--metrics-port serves one process"),
        ([], pooled, "rerank = 0.8 re-ranks hybrid search by token vectors"),
    ]
    for args, extra, message in cases:
        done = subprocess.run(
            [JANUS, "serve", "--no-warm", "--port", str(free_port()), *args],
            env=home_env(path) | extra,
            cwd=path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode != 0, done.stdout
        assert message in " ".join(done.stderr.split()), done.stderr
