"""``janus search`` as users run it: a real process, JSON with stable keys, a table, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from retrieve_corpus import FOOD, SCIENCE, extractor_fixture, write  # noqa: F401 - fixtures

from janus_stack.config import load_settings
from janus_stack.context import Janus
from janus_stack.ingest.pipeline import IngestOptions, Ingestor
from janus_stack.ingest.spacy_extractor import SpacyEntityExtractor

JANUS = [sys.executable, "-m", "janus_stack"]


def janus(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*JANUS, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
        timeout=180,
        check=False,
    )


@pytest.fixture
def home(_isolated_home: Path, extractor: SpacyEntityExtractor) -> Path:
    """JANUS_HOME holding the science and food documents, closed again."""
    files = write(_isolated_home / "docs", {**SCIENCE, **FOOD})
    with Janus(load_settings()) as opened:
        ingestor = Ingestor(opened, opened.embedder, IngestOptions())
        ingestor.projector.extractor = extractor
        report = ingestor.ingest(list(files.values()), tenant="default", tags={"set": "cli"})
        assert not report.failed
    return _isolated_home


def test_json_output_has_stable_keys_and_cites_the_path(home: Path) -> None:
    result = janus("search", "Amara Okafor and Copenhagen", "--k", "2", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data) == [
        "query",
        "mode",
        "tenant",
        "k",
        "filters",
        "weights",
        "entities",
        "took_ms",
        "hits",
    ]
    assert data["mode"] == "hybrid" and data["tenant"] == "default" and data["k"] == 2
    assert {e["name"] for e in data["entities"]} == {"Amara Okafor", "Copenhagen"}
    sources = {Path(hit["document"]["source"]).name for hit in data["hits"]}
    assert sources == {"observatory.md", "voyage.txt"}
    for hit in data["hits"]:
        assert set(hit["scores"]) >= {"fused", "graph", "keyword", "dense"}
        between = [p for p in hit["graph_paths"] if p["kind"] == "between"]
        assert between and "Henrik Larsen" in between[0]["text"]
        assert all(r["chunk_ids"] for r in between[0]["relations"])

    args = ("search", "Amara Okafor and Copenhagen", "--k", "2", "--weight", "rerank=0.8")
    result = janus(*args, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["weights"]["rerank"] == 0.8
    assert all(0 < hit["scores"]["rerank"] <= 1 for hit in data["hits"])

    result = janus("search", "zorbulite", "--mode", "keyword", "--filter", "tags.set=cli", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["filters"] == {"tags.set": "cli"} and data["weights"] is None
    assert [Path(h["document"]["source"]).name for h in data["hits"]] == ["bakery.md"]


def test_table_output_shows_documents_and_paths(home: Path) -> None:
    result = janus("search", "How is Amara Okafor connected to Copenhagen?", "--mode", "graph")
    assert result.returncode == 0, result.stderr
    assert "voyage.txt" in result.stdout and "observatory.md" in result.stdout
    assert "between: Amara Okafor" in result.stdout and "Henrik Larsen" in result.stdout
    assert re.search(r"entities: Amara Okafor \(\w+\), Copenhagen \(\w+\)", result.stdout)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["search", ""], "the query is empty"),
        (["search", "x" * 2001], "the limit is 2,000"),
        (["search", "x", "--mode", "semantic"], "unknown mode 'semantic'"),
        (["search", "x", "--k", "0"], "k must be an integer from 1 to 100"),
        (["search", "x", "--k", "500"], "k must be an integer from 1 to 100"),
        (["search", "x", "--tenant", "ghost"], "tenant 'ghost' does not exist"),
        (["search", "x", "--filter", "colour=red"], "unknown filter field 'colour'"),
        (["search", "x", "--filter", "page=two"], "whole number"),
        (["search", "x", "--weight", "graph=lots"], "not a number"),
        (["search", "x", "--weight", "rerank=2"], "rerank=2.0 must be from 0 to 1"),
        (["search", "x", "--hops", "7"], "hops must be an integer from 1 to 3"),
    ],
)
def test_bad_input_exits_1_with_a_message_not_a_traceback(
    _isolated_home: Path, args: list[str], words: str
) -> None:
    if "ghost" in args:  # the ledger must exist for a tenant to be unknown
        with Janus(load_settings()) as opened:
            opened.ledger  # noqa: B018 - creates and migrates it
    result = janus(*args)
    assert result.returncode == 1, result
    assert words in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
