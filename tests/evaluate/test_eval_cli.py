"""``janus eval`` as users run it: a real process on a tiny JSONL dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from janus_stack.cli import main

TINY = Path(__file__).parent / "fixtures" / "tiny"
JANUS = [sys.executable, "-m", "janus_stack"]


def janus(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*JANUS, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
        timeout=240,
        check=False,
    )


def run_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``janus ARGS`` through the real entry point, without a new interpreter's start-up."""
    code = 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["janus", *args])
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_scores_every_mode_and_answers_then_reuses_the_ingest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = janus("eval", str(TINY), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data) == [
        "dataset",
        "description",
        "tenant",
        "documents",
        "entities_in_tenant",
        "queries",
        "k",
        "deep",
        "weights",
        "ingest",
        "retrieval",
        "qa",
        "seconds",
    ]
    assert data["tenant"] == "eval-tiny" and data["documents"] == 5
    assert data["queries"] == {"total": 4, "judged": 4, "run": 4}
    assert data["ingest"]["ingested"] == 1 and data["entities_in_tenant"] > 0
    rows = {row["mode"]: row for row in data["retrieval"]}
    assert list(rows) == ["dense", "keyword", "graph", "hybrid"]
    assert set(rows["hybrid"]) == {
        "mode",
        "queries",
        "ndcg",
        "recall",
        "recall_deep",
        "mrr",
        "latency_mean_ms",
        "latency_p95_ms",
        "note",
    }
    for mode in ("dense", "keyword", "hybrid"):
        assert rows[mode]["queries"] == 4
        assert rows[mode]["recall_deep"] == 1.0, rows[mode]
        assert rows[mode]["mrr"] >= 0.75, rows[mode]
        assert rows[mode]["latency_mean_ms"] > 0
    assert rows["keyword"]["ndcg"] == 1.0
    qa = data["qa"]
    assert qa["questions"] == 3 and qa["with_answers"] == 3 and qa["multi_hop"] == 1
    assert 0 <= qa["f1"] <= 1 and qa["found"] > 0

    again = run_in_process(
        capsys,
        "eval",
        str(TINY),
        *("--modes", "keyword", "--weight", "keyword=0.5", "--no-qa", "--k", "3", "--json"),
    )
    assert again[0] == 0, again
    data = json.loads(again[1])
    assert data["ingest"].get("unchanged") == 1 and "ingested" not in data["ingest"]
    assert [row["mode"] for row in data["retrieval"]] == ["keyword"]
    assert data["weights"]["keyword"] == 0.5
    assert data["qa"] is None and data["k"] == 3


def test_eval_bad_dataset_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("corpus.jsonl", "qrels.tsv"):
        (folder / name).write_bytes((TINY / name).read_bytes())
    (folder / "queries.jsonl").write_text('{"id": "q1", "text": "ok"}\n{"id": "q2", text}\n')
    code, out, err = run_in_process(capsys, "eval", str(folder))
    assert code == 1 and out == ""
    assert f"{folder / 'queries.jsonl'}:2: invalid JSON" in " ".join(err.split())

    code, out, err = run_in_process(capsys, "eval", str(tmp_path / "absent"), "--json")
    assert code == 1 and out == "" and "no such dataset folder" in err

    code, out, err = run_in_process(capsys, "eval")
    assert code == 1 and "needs a DATASET" in err

    code, out, err = run_in_process(capsys, "eval", str(TINY), "--modes", "fuzzy")
    assert code == 1 and "unknown mode 'fuzzy'" in err
