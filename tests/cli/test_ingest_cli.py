"""`janus ingest`, `delete`, `docs`, `stats` and `audit` as users run them: real processes.

Each call is a fresh ``python -m janus_stack`` against the test's JANUS_HOME
(set by the autouse fixture), so what is checked is what a user sees:
exit codes, the failure table, the summary line, and the JSON of
``--json``. Documents are one chunk each to keep the embedder cheap.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import janus_stack

JANUS = [sys.executable, "-m", "janus_stack"]
HAS_VERIFY = (Path(janus_stack.__file__).parent / "ops" / "verify.py").exists()
DEFAULT_MAX_BYTES = 100 * 1024 * 1024


def janus(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI; a wide terminal keeps Rich from folding table cells."""
    result = subprocess.run(
        [*JANUS, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "1000"},
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    return result


def janus_json(*args: str, code: int = 0) -> Any:
    result = janus(*args, "--json")
    assert result.returncode == code, result.stdout + result.stderr
    return json.loads(result.stdout)


def text(i: int) -> str:
    people = ("Alice Johnson", "Robert Smith", "Maria Garcia", "David Chen")
    person, other = random.Random(i).sample(people, 2)
    return (
        f"Memo {i}. {person} joined Acme Corporation in London. "
        f"{other} works with {person} at Acme Corporation.\n"
    )


def write_bad_inputs(folder: Path) -> dict[str, str]:
    """Two good files and one of each kind of bad input; returns bad name → expected reason."""
    folder.mkdir()
    (folder / "good0.txt").write_text(text(0), encoding="utf-8")
    (folder / "good1.md").write_text("# Notes\n\n" + text(1), encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    rng = random.Random(3)
    (folder / "image.txt").write_bytes(
        b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(600))
    )
    (folder / "garbled.txt").write_bytes(
        b"Header line\n" + bytes(rng.randrange(0x80, 0x100) for _ in range(3000))
    )
    # Over the (default, not configurable) 100 MiB limit; sparse, so it costs no disk.
    with (folder / "huge.txt").open("wb") as handle:
        handle.truncate(DEFAULT_MAX_BYTES + 1)
    return {
        "empty.txt": "the file is empty (0 bytes)",
        "image.txt": "unsupported file type: image/png",
        "garbled.txt": "not valid UTF-8",
        "huge.txt": "over the limit of 104,857,600",
    }


def test_bad_inputs_are_reported_recorded_as_failed_and_the_rest_is_ingested(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "in"
    reasons = write_bad_inputs(folder)
    nothere = str(tmp_path / "nothere.txt")

    result = janus("ingest", str(folder), nothere, "--no-entities")

    assert result.returncode == 1, result.stdout + result.stderr
    rows = {
        name: line
        for line in result.stdout.splitlines()
        for name in [*reasons, "nothere.txt"]
        if f"{tmp_path}/{'' if name == 'nothere.txt' else 'in/'}{name} " in line
    }
    assert set(rows) == {*reasons, "nothere.txt"}, result.stdout
    for name, reason in reasons.items():
        assert reason in rows[name], rows[name]
    assert "no such file" in rows["nothere.txt"]
    assert "6 files: 2 ingested, 0 unchanged, 4 failed; 2 documents, 2 new chunks" in (
        result.stdout
    )

    failed = janus_json("docs", "list", "--status", "failed")
    assert sorted(Path(row["source"]).name for row in failed) == sorted(reasons)
    assert {row["status"] for row in failed} == {"failed"}
    garbled = next(row for row in failed if row["source"].endswith("garbled.txt"))
    (version,) = janus_json("docs", "show", garbled["id"])["versions"]
    assert version["status"] == "failed" and reasons["garbled.txt"] in version["error"]

    # Run again: the good files are unchanged, the bad ones fail the same way.
    again = janus_json("ingest", str(folder), "--no-entities", code=1)
    assert again["summary"] == {
        "files": 6,
        "documents": 0,
        "chunks": 0,
        "unchanged": 2,
        "failed": 4,
    }
    errors = {Path(f["path"]).name: f["error"] for f in again["files"] if f["status"] == "failed"}
    assert {name: reasons[name] in error for name, error in errors.items()} == dict.fromkeys(
        reasons, True
    )
    assert again["missing"] == []

    stats = janus_json("stats")["default"]
    assert stats["failed_documents"] == 4
    assert stats["documents"] == 6
    assert stats["versions"] == 6, "a failure seen again is not a new version"
    assert stats["chunks"] == stats["vectors"] == 2
    events = janus_json("audit", "list", "--type", "document.failed", "--limit", "100")
    assert sorted(Path(e["subject"]).name for e in events) == sorted([*reasons, *reasons])
    assert {Path(e["subject"]).name: e["payload"]["reason"] for e in events} == {
        "empty.txt": "empty",
        "image.txt": "unsupported",
        "garbled.txt": "undecodable",
        "huge.txt": "too_large",
    }


def test_tenant_tags_recursion_hidden_files_and_limit(tmp_path: Path) -> None:
    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True)
    (top / ".hidden").mkdir()
    for i, relative in enumerate(["a.txt", "b.txt", "sub/c.txt", ".hidden/d.txt", ".e.txt"]):
        (top / relative).write_text(text(i), encoding="utf-8")
    tags = ["--tag", "team=research", "--tag", "year=2024"]

    flat = janus_json("ingest", str(top), "--tenant", "acme", *tags, "--no-entities")

    assert sorted(Path(f["path"]).name for f in flat["files"]) == ["a.txt", "b.txt"]
    assert flat["summary"]["ingested"] == 2

    deep = janus_json("ingest", str(top), "-r", "--tenant", "acme", *tags, "--no-entities")

    assert {Path(f["path"]).name: f["status"] for f in deep["files"]} == {
        "a.txt": "unchanged",
        "b.txt": "unchanged",
        "c.txt": "ingested",
    }
    listed = janus_json("docs", "list", "--tenant", "acme")
    assert sorted(Path(row["source"]).name for row in listed) == ["a.txt", "b.txt", "c.txt"]
    shown = janus_json("docs", "show", listed[0]["id"], "--tenant", "acme")
    assert shown["tags"] == {"team": "research", "year": "2024"}
    assert shown["tenant"] == "acme"

    limited = janus_json("ingest", str(top), "-r", "--tenant", "few", "--limit", "2")

    assert limited["summary"]["documents"] == 2
    stats = janus_json("stats")
    assert set(stats) == {"acme", "few"}, "the default tenant holds nothing"
    assert stats["acme"]["documents"] == stats["acme"]["vectors"] == 3
    assert stats["few"]["documents"] == stats["few"]["vectors"] == 2
    assert stats["few"]["entities"] > 0


def test_ingest_twice_resume_then_delete_by_path_and_by_id_with_audit(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(3):
        (folder / f"memo{i}.txt").write_text(text(i), encoding="utf-8")

    first = janus_json("ingest", str(folder))
    before = janus_json("stats")
    second = janus_json("ingest", "--resume", str(folder))

    assert first["summary"] == {"files": 3, "documents": 3, "chunks": 3, "ingested": 3}
    assert second["summary"] == {"files": 3, "documents": 0, "chunks": 0, "unchanged": 3}
    assert second["resumed_versions"] == 0
    assert janus_json("stats") == before
    assert before["default"]["entities"] > 0 and before["default"]["vectors"] == 3
    listed = {Path(row["source"]).name: row for row in janus_json("docs", "list")}

    by_path = janus("delete", str(folder / "memo0.txt"))
    assert by_path.returncode == 0, by_path.stdout + by_path.stderr
    assert f"deleted {listed['memo0.txt']['id']}: 1 contributions removed" in by_path.stdout
    (by_id,) = janus_json("delete", listed["memo1.txt"]["id"])
    assert by_id["document_id"] == listed["memo1.txt"]["id"]
    assert by_id["doc_ids_removed"] == [listed["memo1.txt"]["doc_id"]]
    assert len(by_id["objects_removed"]) == 1

    after = janus_json("stats")["default"]
    assert after["documents"] == 1 and after["vectors"] == after["chunks"] == 1
    events = janus_json("audit", "list", "--limit", "1000")
    assert [e["type"] for e in events if e["type"].startswith("document.")] == [
        *["document.ingested"] * 3,
        *["document.deleted"] * 2,
    ]
    verify = janus("audit", "verify")
    assert verify.returncode == 0 and "intact" in verify.stdout
    if HAS_VERIFY:
        report = janus("verify", "--json")
        assert report.returncode == 0, report.stdout + report.stderr

    unknown = janus("delete", "no-such-document")
    assert unknown.returncode == 1
    assert "no live document" in unknown.stdout + unknown.stderr
    bad_tag = janus("ingest", str(folder), "--tag", "novalue")
    assert bad_tag.returncode == 1
    assert "key=value" in bad_tag.stdout + bad_tag.stderr
