"""Bad input against a real ``janus serve``: every refusal is a 4xx naming the problem.

Malformed JSON, wrong types, bodies over the limits (declared and streamed),
invalid UTF-8 in JSON and in multipart fields, file names that are paths,
and unknown IDs on every ID route of the live OpenAPI document. After each,
the ledger's rows, the stored objects and the staging folder are exactly
as before: a refused request leaves nothing behind.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import Server, make_keys, start_server, stop_server

LIMIT = 1024 * 1024  # --max-upload-mb 1
TABLES = ("documents", "document_versions", "chunks", "ingestion_stages", "workflow_runs")
BOUNDARY = "janus-test-boundary"
SEED = b"Vostok 1 carried Yuri Gagarin once around the Earth in April 1961.\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("bad-input-home")
    server = start_server(home, "--max-upload-mb", "1", "--no-warm")
    tokens = make_keys(home, {"writer": ("acme", "writer", []), "admin": ("acme", "admin", [])})
    server.keys = {("acme", role): token for role, token in tokens.items()}
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.key('acme', 'writer')}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=120) as opened:
        seeded = opened.post("/v1/documents", files={"file": ("vostok.txt", SEED)})
        assert seeded.status_code == 201, seeded.text
        yield opened


def stored_state(home: Path) -> dict[str, Any]:
    """Row counts of the ledger tables, the object files and the staging leftovers."""
    with sqlite3.connect(f"file:{home}/janus.db?mode=ro", uri=True) as db:
        present = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        rows = {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in TABLES
            if table in present
        }
    objects = home / "objects"
    files = sorted(str(path.relative_to(objects)) for path in objects.rglob("*") if path.is_file())
    return {"rows": rows, "files": files}


@pytest.fixture
def unchanged(server: Server, client: httpx.Client) -> Iterator[None]:
    """Asserts, after the test, that nothing stored changed."""
    before = stored_state(server.home)
    assert before["rows"]["documents"] >= 1
    yield
    assert stored_state(server.home) == before


def assert_problem(response: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    """A JSON problem body with ``status`` whose message names every needle (any case)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == status and error["type"] and error["message"]
    for needle in needles:
        assert needle.lower() in error["message"].lower(), (needle, error)
    return dict(error)


def multipart(parts: list[tuple[bytes, bytes]]) -> tuple[bytes, dict[str, str]]:
    """A multipart body from (Content-Disposition value, content) pairs, bytes as given."""
    body = b""
    for disposition, content in parts:
        body += f"--{BOUNDARY}\r\n".encode() + b"Content-Disposition: " + disposition
        body += b"\r\n\r\n" + content + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def file_part(filename: bytes, content: bytes = SEED) -> tuple[bytes, bytes]:
    return b'form-data; name="file"; filename="' + filename + b'"', content


# -- JSON bodies -------------------------------------------------------------------


@pytest.mark.usefixtures("unchanged")
def test_malformed_json_is_422_naming_the_position(client: httpx.Client) -> None:
    response = client.post(
        "/v1/search", content=b'{"query": "Gagarin", ', headers={"Content-Type": "application/json"}
    )
    error = assert_problem(response, 422, "body", "json")
    assert error["type"] == "validation_error"


@pytest.mark.usefixtures("unchanged")
def test_wrong_types_name_every_field(client: httpx.Client) -> None:
    response = client.post("/v1/search", json={"query": 7, "k": "many", "mode": "psychic"})
    assert_problem(response, 422, "query", "k", "mode")
    response = client.post("/v1/runs", json={"workflow": ["approve"], "inputs": "x"})
    assert_problem(response, 422, "workflow", "inputs")
    response = client.get("/v1/documents", params={"limit": "lots", "status": "lost"})
    assert_problem(response, 422, "limit", "status")


@pytest.mark.usefixtures("unchanged")
def test_invalid_utf8_in_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/v1/search",
        content=b'{"query": "Gagarin \xff\xfe"}',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 400, "utf-8")


@pytest.mark.usefixtures("unchanged")
def test_huge_json_bodies_are_413_declared_or_streamed(client: httpx.Client) -> None:
    huge = b'{"query": "' + b"a" * (5 * 1024 * 1024) + b'"}'
    declared = client.post("/v1/search", content=huge, headers={"Content-Type": "application/json"})
    assert_problem(declared, 413, "limit", "4,194,304")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count
        for start in range(0, len(huge), 256 * 1024):
            yield huge[start : start + 256 * 1024]

    streamed = client.post(
        "/v1/workflows/validate", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_problem(streamed, 413, "limit", "4,194,304")


# -- uploads -----------------------------------------------------------------------


@pytest.mark.usefixtures("unchanged")
def test_upload_over_the_limit_is_413_and_stores_nothing(client: httpx.Client) -> None:
    big = b"x" * (LIMIT + 1)
    declared = client.post("/v1/documents", files={"file": ("big.txt", big)})
    assert_problem(declared, 413, "1,048,576")

    body, headers = multipart([file_part(b"big.txt", big)])

    def chunks() -> Iterator[bytes]:  # no Content-Length
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    streamed = client.post("/v1/documents", content=chunks(), headers=headers)
    assert_problem(streamed, 413, "1,048,576")
    # Over the file limit but within the framing allowance: caught while storing.
    exact, headers = multipart([file_part(b"edge.txt", b"y" * (LIMIT + 10))])
    assert_problem(client.post("/v1/documents", content=exact, headers=headers), 413, "1,048,576")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("filename", "needle"),
    [
        (b"../../etc/passwd", "path"),
        (b"/etc/passwd", "path"),
        (b"..\\..\\windows\\win.ini", "path"),
        (b"..", "path"),
        (b"report\x00.txt", "control"),
        (b"tab\there.txt", "control"),
        (b"caf\xe9.txt", "utf-8"),
    ],
)
def test_file_names_that_are_paths_or_broken_are_400(
    client: httpx.Client, filename: bytes, needle: str
) -> None:
    body, headers = multipart([file_part(filename)])
    assert_problem(client.post("/v1/documents", content=body, headers=headers), 400, needle)


@pytest.mark.usefixtures("unchanged")
def test_multipart_text_fields_and_framing_are_checked(client: httpx.Client) -> None:
    broken_tag = (b'form-data; name="tag"', b"topic=sp\xffce")
    body, headers = multipart([broken_tag, file_part(b"tagged.txt")])
    assert_problem(client.post("/v1/documents", content=body, headers=headers), 400, "tag", "utf-8")
    bad_flag = (b'form-data; name="entities"', b"perhaps")
    body, headers = multipart([bad_flag, file_part(b"flag.txt")])
    assert_problem(client.post("/v1/documents", content=body, headers=headers), 400, "entities")
    bad_tag = (b'form-data; name="tag"', b"no equals sign")
    body, headers = multipart([bad_tag, file_part(b"tag.txt")])
    assert_problem(client.post("/v1/documents", content=body, headers=headers), 400, "key=value")
    no_file = multipart([(b'form-data; name="tag"', b"a=b")])
    assert_problem(
        client.post("/v1/documents", content=no_file[0], headers=no_file[1]), 400, "file"
    )
    not_multipart = client.post("/v1/documents", json={"file": "x"})
    assert_problem(not_multipart, 400, "multipart")
    truncated = f"--{BOUNDARY}\r\nContent-Disposition: form-data".encode()
    response = client.post("/v1/documents", content=truncated, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["message"]


# -- unknown IDs ---------------------------------------------------------------------


def id_operations(server: Server) -> list[tuple[str, str, list[str]]]:
    """(method, path, path parameter names) of every operation with an ID in its path."""
    document = httpx.get(f"{server.url}/openapi.json").json()
    found = []
    for path, item in document["paths"].items():
        names = re.findall(r"{(\w+)}", path)
        if names:
            found.extend((method.upper(), path, names) for method in item)
    return found


@pytest.mark.usefixtures("unchanged")
def test_unknown_ids_are_404_naming_the_id_on_every_id_route(
    server: Server, client: httpx.Client
) -> None:
    operations = id_operations(server)
    assert {path for _m, path, _n in operations} >= {
        "/v1/documents/{document_id}",
        "/v1/documents/{document_id}/raw",
        "/v1/runs/{run_id}",
        "/v1/runs/{run_id}/cancel",
        "/v1/agents/{name}",
    }
    bodies = {"/v1/runs/{run_id}/feedback": {"text": "ok"}}
    admin = {"Authorization": f"Bearer {server.key('acme', 'admin')}"}  # may call every route
    for method, path, names in operations:
        unknown = "nosuch0000id"
        url = path
        for name in names:
            url = url.replace("{" + name + "}", unknown)
        body = bodies.get(path)
        response = client.request(method, url, json=body, headers=admin)
        assert_problem(response, 404, unknown)
