"""The benchmark scripts still run: each once at a toy size, through its real command line.

They are not tests of speed (no figure is checked); they are programs that
import half of Janus, and a change elsewhere (a new embedder method, say)
can break one without any test noticing until someone measures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUARD = 600  # a guard against a hung child, not a speed assertion


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_the_query_benchmark_runs(tmp_path: Path) -> None:
    result = bench(
        "benchmarks.query", "--chunks", "300", "--queries", "4", "--home", str(tmp_path), "--json"
    )
    data = json.loads(result.stdout)
    assert data["chunks"] >= 300 and data["bare_p95_ms"] > 0
    assert {"dense", "keyword", "graph", "hybrid", "hybrid+rerank"} <= set(data["p95_ms"])


def test_the_ingest_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    bench(
        "benchmarks.ingest", "--scenarios", "synthetic", "--synthetic", "60", "--json-out", str(out)
    )
    (synthetic,) = json.loads(out.read_text(encoding="utf-8"))
    assert synthetic["scenario"] == "synthetic" and synthetic["error"] is None
    assert synthetic["documents"] == 60 and synthetic["reingest_unchanged"]


@pytest.mark.usefixtures("amqp_url")
def test_the_workflows_benchmark_runs() -> None:
    result = bench(
        "benchmarks.workflows", "--steps", "5", "--amqp-steps", "5", "--resume-steps", "10"
    )
    assert "per step" in result.stdout and "resume" in result.stdout
