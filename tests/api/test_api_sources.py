"""What a client sees of a document's source: the name it was given, never a server path.

A real ``janus serve`` whose home holds one file ingested on the server's
machine (``janus ingest /…/private/notes/saturn.md``) before it started; the
tests upload ``a/x.md`` and ``b/x.md`` (one file name, two folders) and read
the sources back from every route that shows them: search hits, answers
(plain and streamed), topic memories and document listings. No answer may
contain the server's home or the folders above its own files.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_server import JANUS, Server, home_env, make_keys, start_server, stop_server

from janus_stack.client import BadRequestError, JanusClient

SATURN = "# Saturn V\n\nThe Saturn V rocket launched Apollo 8. Wernher von Braun designed it.\n"
FERN = "# Fern\n\nThe zorblat fern grows in the lunar garden of Tycho base.\n"
MOSS = "# Moss\n\nThe zorblat moss covers the lunar garden of Clavius base.\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("sources-home")
    notes = tmp_path_factory.mktemp("server-files") / "private" / "notes"
    notes.mkdir(parents=True)
    (notes / "saturn.md").write_text(SATURN)
    tokens = make_keys(home, {"writer": ("acme", "writer", [])})
    subprocess.run(
        [JANUS, "ingest", "--tenant", "acme", str(notes / "saturn.md")],
        env=home_env(home),
        cwd=home,
        check=True,
        capture_output=True,
        timeout=240,
    )
    started = start_server(home)
    started.extra.update(tokens, notes=str(notes))
    try:
        yield started
    finally:
        stop_server(started)


@pytest.fixture(scope="module")
def writer(server: Server) -> Iterator[JanusClient]:
    with JanusClient(server.url, server.extra["writer"], timeout=120) as client:
        for name, text in (("a/x.md", FERN), ("b/x.md", MOSS)):
            assert client.upload(text.encode(), name=name)["status"] in ("ingested", "unchanged")
        yield client


def private(server: Server, data: Any) -> None:
    """Nothing in ``data`` names the server's home or the folders of its own files."""
    text = str(data)
    assert str(server.home) not in text and "/uploads/" not in text, text[:2000]
    assert server.extra["notes"] not in text and "private/notes" not in text, text[:2000]


def test_one_file_name_in_two_folders_is_two_documents(writer: JanusClient) -> None:
    listed = writer.list_documents()["documents"]
    assert sorted(row["name"] for row in listed) == ["a/x.md", "b/x.md", "saturn.md"]
    fern = next(row for row in listed if row["name"] == "a/x.md")
    assert writer.get_document(fern["id"])["name"] == "a/x.md"
    # The listing's name filter is exact: "x.md" is neither upload, "a/x.md" is one.
    assert writer.list_documents(name="x.md")["total"] == 0
    assert [row["id"] for row in writer.list_documents(name="a/x.md")["documents"]] == [fern["id"]]
    assert [row["name"] for row in writer.list_documents(name="saturn.md")["documents"]] == [
        "saturn.md"
    ]
    # Uploading a name again is a new version of that document only.
    changed = writer.upload(FERN.replace("Tycho", "Copernicus").encode(), name="a/x.md")
    assert changed["status"] == "ingested" and changed["documents"] == [fern["id"]]
    assert writer.list_documents()["total"] == 3
    with pytest.raises(BadRequestError, match="relative path"):
        writer.upload(b"escape", name="a/../../x.md")


def test_hits_answers_and_memory_show_the_source_as_given(
    server: Server, writer: JanusClient
) -> None:
    found = writer.search("zorblat lunar garden", mode="keyword", k=5)
    assert {hit["document"]["source"] for hit in found["hits"]} == {"a/x.md", "b/x.md"}
    private(server, found)
    saturn = writer.search("Saturn V rocket", k=1)["hits"][0]
    assert saturn["document"]["source"] == "saturn.md"

    only_b = writer.search("zorblat", mode="keyword", filters={"source": "b/x.md"})
    assert [hit["document"]["source"] for hit in only_b["hits"]] == ["b/x.md"]
    assert only_b["filters"] == {"source": "b/x.md"}  # echoed as the client wrote it
    dense = writer.search("zorblat moss", mode="dense", filters={"source": "b/x.md"})
    assert dense["hits"] and {h["document"]["source"] for h in dense["hits"]} == {"b/x.md"}

    answer = writer.ask("Who designed the Saturn V?")
    assert answer["found"] and answer["citations"][0]["document"]["source"] == "saturn.md"
    private(server, answer)
    streamed = [event for event in writer.ask_stream("Where does the zorblat moss grow?")]
    final = next(event.data for event in streamed if event.kind == "answer")
    assert {c["document"]["source"] for c in final["citations"]} <= {"a/x.md", "b/x.md"}
    assert final["citations"]
    private(server, [event.data for event in streamed])

    topic = writer.memory("Saturn V")
    assert topic["documents"] and topic["documents"][0]["source"] == "saturn.md"
    private(server, topic)


def test_the_raw_api_discloses_no_server_path(server: Server, writer: JanusClient) -> None:
    headers = {"Authorization": f"Bearer {server.extra['writer']}"}
    bodies = [
        httpx.post(f"{server.url}/v1/search", json={"query": "zorblat"}, headers=headers),
        httpx.get(f"{server.url}/v1/documents", headers=headers),
        httpx.get(f"{server.url}/v1/memory", params={"topic": "Apollo 8"}, headers=headers),
    ]
    for response in bodies:
        assert response.status_code == 200, response.text
        private(server, response.text)
