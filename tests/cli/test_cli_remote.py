"""``janus --server URL --api-key KEY ...``: the real CLI against a real ``janus serve``.

Each call is a fresh ``python -m janus_stack`` process; the server runs the
example agents and workflows (plus ``approve``, a workflow with a human
step, in its JANUS_HOME). What is checked is what a user sees: exit codes,
readable errors, and ``--json`` whose keys are those of the same command
run on a local JANUS_HOME.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.api_server import APPROVE, EXAMPLES, Server, start_workflow_server, stop_server

JANUS = [sys.executable, "-m", "janus_stack"]
APOLLO = (
    "Apollo 8 was the first crewed spacecraft to orbit the Moon. Frank Borman commanded "
    "Apollo 8, with James Lovell and William Anders. NASA launched it in December 1968.\n"
)
GEMINI = "Gemini 7 flew in December 1965. Frank Borman and James Lovell spent two weeks aloft.\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    specs = {f"acme:{role}": ("acme", role, []) for role in ("admin", "writer", "reader")}
    started, tokens = start_workflow_server(tmp_path_factory.mktemp("remote-home"), specs)
    started.keys = {("acme", name.split(":")[1]): token for name, token in tokens.items()}
    try:
        yield started
    finally:
        stop_server(started)


def janus(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it; a wide terminal keeps Rich from folding table cells."""
    result = subprocess.run(
        [*JANUS, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "1000", **(env or {})},
        cwd=cwd,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def remote(
    server: Server, role: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return janus("--server", server.url, "--api-key", server.key("acme", role), *args, cwd=cwd)


def remote_json(
    server: Server, role: str, *args: str, code: int = 0, cwd: Path | None = None
) -> Any:
    result = remote(server, role, *args, "--json", cwd=cwd)
    assert result.returncode == code, result.stdout + result.stderr
    return json.loads(result.stdout)


def local_json(*args: str) -> Any:
    result = janus(*args, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def same_keys(there: dict[str, Any], here: dict[str, Any], where: str) -> None:
    """Equal keys at every level both sides have (list items merged, empty lists skipped)."""
    assert set(there) == set(here), where
    for key, value in there.items():
        one, other = value, here[key]
        if isinstance(one, list) and isinstance(other, list):
            one = {k: v for item in one if isinstance(item, dict) for k, v in item.items()}
            other = {k: v for item in other if isinstance(item, dict) for k, v in item.items()}
            if not one or not other:
                continue
        if isinstance(one, dict) and isinstance(other, dict):
            same_keys(one, other, f"{where}.{key}")


@pytest.fixture(scope="module")
def corpus(server: Server, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "apollo.txt").write_text(APOLLO)
    (folder / "gemini.txt").write_text(GEMINI)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    return sorted(folder.iterdir())


def test_ingest_docs_and_delete_through_the_server(server: Server, corpus: list[Path]) -> None:
    here = corpus[0].parent  # the files are named as given: relative to here
    names = [path.name for path in corpus]
    uploaded = remote(server, "writer", "ingest", *names, "--tag", "topic=space", cwd=here)
    assert uploaded.returncode == 1  # the PNG cannot be extracted; the other files are ingested
    assert "broken.png" in uploaded.stdout and "2 ingested" in uploaded.stdout
    again = remote_json(server, "writer", "ingest", names[0], f"./{names[2]}", cwd=here)
    assert again["summary"]["unchanged"] == 2 and again["summary"]["chunks"] == 0
    assert again["resumed_versions"] is None  # the server finishes its own leftovers

    listed = remote_json(server, "reader", "docs", "list")
    status = {row["name"]: row["status"] for row in listed}
    assert status == {"apollo.txt": "done", "gemini.txt": "done", "broken.png": "failed"}
    apollo = next(row for row in listed if row["name"] == "apollo.txt")
    shown = remote_json(server, "reader", "docs", "show", apollo["id"])
    assert shown["name"] == "apollo.txt" and shown["tags"] == {"topic": "space"}
    assert [stage["status"] for stage in shown["versions"][0]["stages"]] == ["done"] * len(
        shown["versions"][0]["stages"]
    )

    temp = corpus[0].with_name("short-lived.txt")
    temp.write_text("A note that will be deleted.\n")
    remote_json(server, "writer", "ingest", str(temp), "--no-entities")
    (deleted,) = remote_json(server, "writer", "delete", str(temp))  # by the file it came from
    assert deleted["doc_ids_removed"] and set(deleted) == {
        "document_id",
        "doc_ids_removed",
        "doc_ids_kept",
        "objects_removed",
    }
    gone = remote(server, "reader", "docs", "show", deleted["document_id"])
    assert gone.returncode == 1 and "404 not_found" in gone.stderr
    refused = remote(server, "reader", "delete", apollo["id"])
    assert refused.returncode == 1
    assert "does not grant 'documents:write'" in refused.stderr and "403" in refused.stderr


def test_one_file_name_in_two_folders_is_two_documents(server: Server, tmp_path: Path) -> None:
    for folder, plant in (("a", "fern"), ("b", "moss")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.md").write_text(f"The zorblat {plant} grows on Tycho base.\n")
    uploaded = remote_json(
        server, "writer", "ingest", "a/x.md", "b/x.md", "--no-entities", cwd=tmp_path
    )
    assert uploaded["summary"]["ingested"] == 2, uploaded
    listed = remote_json(server, "reader", "docs", "list", "--limit", "1000")
    assert {"a/x.md", "b/x.md"} <= {row["name"] for row in listed}
    hits = remote_json(server, "reader", "search", "zorblat moss", "--mode", "keyword")["hits"]
    assert hits[0]["document"]["source"] == "b/x.md"  # the name as uploaded, not a server path
    assert {hit["document"]["source"] for hit in hits} == {"a/x.md", "b/x.md"}
    (deleted,) = remote_json(server, "writer", "delete", "b/x.md", cwd=tmp_path)
    after = {
        row["name"] for row in remote_json(server, "reader", "docs", "list", "--limit", "1000")
    }
    assert "a/x.md" in after and "b/x.md" not in after
    assert deleted["doc_ids_removed"]


def test_search_json_has_the_keys_of_local_mode(server: Server, corpus: list[Path]) -> None:
    texts = [str(corpus[0]), str(corpus[2])]  # apollo.txt and gemini.txt
    remote(server, "writer", "ingest", *texts)
    local = janus("ingest", *texts)
    assert local.returncode == 0, local.stderr
    for mode in ("hybrid", "dense", "keyword", "graph"):
        args = ("search", "who commanded Apollo 8", "--mode", mode, "-k", "3")
        there = remote_json(server, "reader", *args)
        here = local_json(*args)
        assert there["hits"] and here["hits"], mode
        same_keys(there, here, mode)
        assert set(there["hits"][0]) == set(here["hits"][0]), mode
        assert there["hits"][0]["document"]["title"] == here["hits"][0]["document"]["title"]
    table = remote(server, "reader", "search", "Borman", "--filter", "title=gemini")
    assert table.returncode == 0 and "gemini" in table.stdout and "tenant acme" in table.stdout
    refused = remote(server, "reader", "search", "Apollo", "--weight", "dense=2")
    assert refused.returncode == 1 and "--weight cannot be used with --server" in refused.stderr


def test_ask_stream_and_memory(server: Server, corpus: list[Path]) -> None:
    remote(server, "writer", "ingest", str(corpus[0]))
    answer = remote_json(server, "reader", "ask", "Who commanded Apollo 8?", "--rounds", "1")
    assert answer["found"] and "Borman" in answer["answer"]
    assert answer["citations"][0]["document"]["title"] == "apollo"
    streamed = remote(server, "reader", "ask", "Who commanded Apollo 8?", "--stream")
    assert streamed.returncode == 0 and "Borman" in streamed.stdout
    assert "passages in" in streamed.stderr  # the retrieval summary, as in local mode
    memory = remote_json(server, "reader", "memory", "Apollo 8", "--filter", "title=apollo")
    assert memory["entity"]["name"] == "Apollo 8" and memory["tenant"] == "acme"
    assert {hit["document"]["title"] for hit in memory["chunks"]} == {"apollo"}


def test_audit_agents_and_workflows(server: Server, corpus: list[Path]) -> None:
    remote(server, "writer", "ingest", str(corpus[0]))  # an upload is an event either way
    events = remote_json(server, "admin", "audit", "list", "--limit", "5")
    assert 0 < len(events) <= 5 and {event["tenant"] for event in events} == {"acme"}
    verified = remote_json(server, "admin", "audit", "verify")
    assert verified["ok"] is True and verified["checked"] > 0
    refused = remote(server, "writer", "audit", "verify")
    assert refused.returncode == 1 and "events:verify" in refused.stderr

    agents = remote_json(server, "reader", "agents", "list")
    assert {"researcher", "summariser"} <= {agent["name"] for agent in agents["agents"]}
    assert set(agents) == {"directories", "agents", "invalid", "tools", "tool_plugin_problems"}
    assert agents["directories"] is None and "memory.ask" in agents["tools"]
    shown = remote_json(server, "reader", "agents", "show", "researcher")
    assert shown["tools"] == ["memory.ask", "memory.search"]
    missing = remote(server, "reader", "agents", "show", "nobody")
    assert missing.returncode == 1 and "no agent named 'nobody'" in missing.stderr

    workflows = remote_json(server, "reader", "workflows", "list")
    named = {entry["name"]: entry for entry in workflows["workflows"]}
    assert {"approve", "research"} <= set(named)
    assert named["research"]["inputs"] == ["question"] and named["research"]["valid"]
    table = remote(server, "reader", "workflows", "list")
    assert table.returncode == 0 and "approve" in table.stdout

    # The same commands on this machine: the same keys, the local folders named.
    folders = ("--agents-dir", str(EXAMPLES / "agents"))
    here = local_json("workflows", "list", "--workflows-dir", str(EXAMPLES / "workflows"), *folders)
    assert set(here) == set(workflows) and here["directories"]
    local_research = next(entry for entry in here["workflows"] if entry["name"] == "research")
    assert set(local_research) == set(named["research"]) and local_research["valid"]
    local_agents = local_json("agents", "list", *folders)
    assert set(local_agents) == set(agents)
    assert set(local_agents["agents"][0]) == set(agents["agents"][0])
    refused = remote(server, "reader", "agents", "list", *folders)
    assert refused.returncode == 1 and "--agents-dir cannot be used with --server" in refused.stderr


def test_run_follow_steer_and_conflicts(server: Server, tmp_path: Path) -> None:
    done = remote(server, "writer", "run", "research", "-i", "question=Who commanded Apollo 8?")
    assert done.returncode == 0, done.stderr
    assert "started" in done.stderr and "done" in done.stdout

    paused = remote_json(server, "writer", "run", "approve", "-i", "topic=the launch")
    assert paused["status"] == "paused" and paused["waiting_for"] == "ask"
    run_id = paused["id"]
    assert run_id in {run["id"] for run in remote_json(server, "reader", "runs", "list")}
    noted = remote_json(server, "writer", "runs", "feedback", run_id, "Approved: go")
    assert noted["id"] == run_id and noted["status"] == "paused"
    resumed = remote_json(server, "writer", "runs", "resume", run_id, "--rerun-interrupted")
    assert resumed["status"] == "done" and resumed["output"] == {"answer": "Approved: go"}
    (event,) = remote_json(
        server, "admin", "audit", "list", "--type", "workflow.run.resumed", "--subject",
        f"run:{run_id}",
    )  # fmt: skip
    assert event["payload"]["rerun_interrupted"] == 0  # asked for; nothing was interrupted
    shown = remote_json(server, "reader", "runs", "show", run_id)
    assert set(shown) >= {"steps", "tool_calls", "feedback", "tokens"}
    assert shown["feedback"][0]["text"] == "Approved: go"

    conflict = remote(server, "writer", "runs", "pause", run_id)
    assert conflict.returncode == 1
    assert f"run {run_id} is done; it cannot be paused" in conflict.stderr
    assert "409 conflict" in conflict.stderr

    spec = tmp_path / "posted.yaml"  # a local file is posted as the spec
    spec.write_text(APPROVE.replace("name: approve", "name: posted"))
    posted = remote_json(server, "writer", "run", str(spec), "-i", "topic=x")
    assert posted["workflow"] == "posted" and posted["status"] == "paused"
    assert remote_json(server, "writer", "runs", "cancel", posted["id"])["status"] == "cancelled"
    again = remote(server, "writer", "runs", "resume", posted["id"])
    assert again.returncode == 1 and "409 conflict" in again.stderr
    assert "is cancelled; only paused, failed or interrupted runs resume" in again.stderr
    steer = remote(server, "reader", "runs", "cancel", posted["id"])
    assert steer.returncode == 1 and "runs:control" in steer.stderr


def test_keys_through_the_server(server: Server) -> None:
    created = remote_json(server, "admin", "keys", "create", "--tenant", "acme", "--role", "reader")
    token = created["token"]
    listed = remote_json(server, "admin", "keys", "list")
    assert created["id"] in {key["id"] for key in listed}
    assert token not in json.dumps(listed)
    usable = janus("--server", server.url, "--api-key", token, "docs", "list", "--json")
    assert usable.returncode == 0, usable.stderr
    refused = remote(server, "writer", "keys", "list")
    assert refused.returncode == 1 and "keys:manage" in refused.stderr
    revoked = remote_json(server, "admin", "keys", "revoke", created["prefix"])
    assert revoked["revoked_at"] is not None
    after = janus("--server", server.url, "--api-key", token, "docs", "list")
    assert after.returncode == 1 and "unknown or revoked" in after.stderr


def test_key_from_env_and_file_and_wrong_keys(server: Server, tmp_path: Path) -> None:
    env = {"JANUS_SERVER": server.url, "READER_TOKEN": server.key("acme", "reader")}
    by_env = janus("docs", "list", "--json", env={**env, "JANUS_API_KEY": "env:READER_TOKEN"})
    assert by_env.returncode == 0, by_env.stderr
    secret = tmp_path / "key.txt"
    secret.write_text(server.key("acme", "reader") + "\n")
    by_file = janus("--api-key", f"file:{secret}", "docs", "list", env=env)
    assert by_file.returncode == 0, by_file.stderr

    wrong = janus("--server", server.url, "--api-key", "jns_wrong_key", "search", "Apollo")
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert "error: the API key is malformed, unknown or revoked" in wrong.stderr
    assert f"401 unauthorized from {server.url}" in wrong.stderr and "hint:" in wrong.stderr
    none = janus("--server", server.url, "docs", "list")
    assert none.returncode == 1 and "this route needs an API key" in none.stderr
    unset = janus("--api-key", "env:NO_SUCH_VARIABLE", "docs", "list", env=env)
    assert unset.returncode == 1 and "env:NO_SUCH_VARIABLE" in unset.stderr
    nowhere = janus("--server", "http://127.0.0.1:9", "--api-key", "x", "docs", "list")
    assert nowhere.returncode == 1 and "cannot reach the Janus server" in nowhere.stderr


@pytest.mark.parametrize(
    "command", [["doctor"], ["stats"], ["verify"], ["db", "current"], ["runs", "usage"]]
)
def test_local_only_commands_refuse_a_server(server: Server, command: list[str]) -> None:
    result = remote(server, "admin", *command)
    assert result.returncode == 1
    assert f"`janus {' '.join(command)}` works on this machine's JANUS_HOME" in result.stderr
