"""The CLI as users run it: a real `janus` process, exit codes and output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

JANUS = [sys.executable, "-m", "janus_stack"]


def janus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*JANUS, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_doctor_passes_on_embedded_defaults(_isolated_home: Path) -> None:
    result = janus("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    slots = {line["slot"]: line for line in report["slots"]}
    assert set(slots) == {
        "relational",
        "objects",
        "vectors",
        "graph",
        "queue",
        "cache",
        "embeddings",
        "llm",
    }
    assert all(line["ok"] and line["latency_ms"] >= 0 for line in slots.values())
    assert slots["llm"]["note"] == "no model configured (answers are extractive)"
    assert (_isolated_home / "janus.db").exists()


def test_doctor_reports_unreachable_server_with_hint_and_exit_1() -> None:
    result = janus("--cache-url", "redis://:sekrit@127.0.0.1:1/0", "doctor", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    cache = next(line for line in report["slots"] if line["slot"] == "cache")
    assert cache["ok"] is False
    assert cache["hint"]
    assert "127.0.0.1:1" in cache["error"]
    assert "sekrit" not in result.stdout + result.stderr
    assert all(line["ok"] for line in report["slots"] if line["slot"] != "cache")


def test_unknown_scheme_is_a_clear_error_not_a_traceback() -> None:
    result = janus("--vectors-url", "pinecone://x", "doctor")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "pinecone" in result.stdout
    assert "qdrant+edge://" in result.stdout


def test_config_show_json_is_redacted(tmp_path: Path) -> None:
    result = janus(
        "--relational-url",
        "postgresql+psycopg://u:env:JPW@h/db",
        "--cache-url",
        "redis://:literal@h:6379/0",
        "config",
        "show",
        "--json",
        env={"JPW": "from-env"},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["slots"]["relational"] == "postgresql+psycopg://u:env:JPW@h/db"
    assert "literal" not in result.stdout
    assert "from-env" not in result.stdout
    assert data["sources"]["slots.cache"] == "flag"


def test_bad_config_file_exits_nonzero_with_the_file_named(_isolated_home: Path) -> None:
    (_isolated_home / "janus.toml").write_text("[slots]\nvectorz = 'x'\n")
    result = janus("config", "show")
    assert result.returncode == 1
    assert "vectorz" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    before = json.loads(janus("--relational-url", url, "db", "current", "--json").stdout)
    assert before["current"] is None
    assert before["up_to_date"] is False
    upgraded = janus("--relational-url", url, "db", "upgrade", "--json")
    assert upgraded.returncode == 0, upgraded.stderr
    after = json.loads(janus("--relational-url", url, "db", "current", "--json").stdout)
    assert after["up_to_date"] is True
    assert after["current"] == after["head"]


def test_server_ledger_behind_head_asks_for_upgrade(pg_database: str) -> None:
    result = janus("--relational-url", pg_database, "audit", "list")
    assert result.returncode == 1
    assert "janus db upgrade" in result.stderr
    assert janus("--relational-url", pg_database, "db", "upgrade").returncode == 0
    assert janus("--relational-url", pg_database, "audit", "verify").returncode == 0


def test_second_process_on_the_same_home_names_the_owner(_isolated_home: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from janus_stack.home_lock import HomeLock;"
            "lock = HomeLock(Path(sys.argv[1])); lock.acquire();"
            "print('locked', flush=True); time.sleep(60)",
            str(_isolated_home),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        result = janus("doctor", "--json")
        assert result.returncode == 1
        report = json.loads(result.stdout)
        failed = {line["slot"]: line for line in report["slots"] if not line["ok"]}
        assert set(failed) == {"vectors", "graph"}
        assert str(holder.pid) in failed["vectors"]["error"]
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("command", [["audit", "verify"], ["audit", "list"]])
def test_audit_commands_on_an_empty_log(command: list[str]) -> None:
    result = janus(*command, "--json")
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)
