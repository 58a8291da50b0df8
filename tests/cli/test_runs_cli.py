"""``janus run`` and ``janus runs show``: streamed text as it was produced, totals, per agent.

The run end to end uses the tiny random GGUF in process (its words are
gibberish, the accounting is real); the stream printing is also checked on
pieces cut mid-word, as the engine's 0.2 s flushes cut them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from janus_stack.cli import app
from janus_stack.cli._backend import Update
from janus_stack.cli.runs import _follow
from janus_stack.config import AGENT_OUTPUT_ENV, load_settings
from janus_stack.context import Janus
from janus_stack.workflows.store import RunStore

# Short strings of a small charset: the random-weight model ends a string only at its bound.
TINY_MODEL_OUTPUT = '{"max_answer_chars": 240, "max_argument_chars": 80, "charset": "basic"}'
WORKFLOW = {
    "name": "draft-check-draft",
    "inputs": {"topic": {"description": "What to write about."}},
    "steps": [
        {"id": "draft", "kind": "agent", "agent": "drafter", "input": "{{ inputs.topic }}"},
        {"id": "check", "kind": "agent", "agent": "checker", "input": "{{ steps.draft.output }}"},
        {"id": "again", "kind": "agent", "agent": "drafter", "input": "{{ steps.check.output }}"},
    ],
}


@pytest.fixture(scope="module", name="tiny_model")
def tiny_model_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("llama_cpp", reason="the llm extra (llama-cpp-python) is not installed")
    from janus_stack.slots.llm.tiny_gguf import write_tiny_gguf  # noqa: PLC0415

    return write_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_runs_show_prints_run_totals_and_usage_per_agent(
    _isolated_home: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _isolated_home
    monkeypatch.setenv("JANUS_LLM_URL", f"llamacpp://{tiny_model}?n_ctx=8192&threads=1&seed=0")
    monkeypatch.setenv(AGENT_OUTPUT_ENV, TINY_MODEL_OUTPUT)
    for name in ("drafter", "checker"):
        manifest = {"name": name, "instructions": f"You are the {name}.", "model": "default"}
        manifest["budget"] = {"max_tokens": 20_000, "max_steps": 3}
        (home / "agents").mkdir(exist_ok=True)
        (home / "agents" / f"{name}.yaml").write_text(yaml.safe_dump(manifest), "utf-8")
    workflow = home / "draft.yaml"
    workflow.write_text(yaml.safe_dump(WORKFLOW), "utf-8")

    ran = invoke("run", str(workflow), "--input", "topic=Apollo 8")
    run_id = json.loads(invoke("runs", "list", "--limit", "1", "--json").stdout)[0]["id"]
    with Janus(load_settings()) as janus:
        pieces = RunStore(janus.ledger).tokens(run_id)
    assert {key for _id, key, _text in pieces} == {"draft", "check", "again"}
    streamed = "".join(text for _id, _key, text in pieces)
    assert ran.stdout.startswith(streamed + "\n")  # as stored, then the report

    shown = json.loads(invoke("runs", "show", run_id, "--json").stdout)
    assert shown["status"] == "done", shown["error"]
    for key in ("id", "status", "usage", "steps", "tool_calls", "feedback", "tokens"):
        assert key in shown  # the keys it had before totals and agents
    steps = shown["steps"]
    totals = shown["totals"]
    assert totals["prompt_tokens"] == shown["usage"]["prompt_tokens"] > 0
    assert totals["completion_tokens"] == shown["usage"]["completion_tokens"] > 0
    assert totals["tokens"] == totals["prompt_tokens"] + totals["completion_tokens"]
    assert totals["steps"] == 3 and totals["steps_by_status"] == {"done": 3}
    assert totals["latency_s"] == pytest.approx(sum(s["latency_s"] for s in steps), abs=1e-3)
    agents = {row["agent"]: row for row in shown["agents"]}
    assert list(agents) == ["checker", "drafter"]
    assert agents["drafter"]["steps"] == 2 and agents["checker"]["steps"] == 1
    for name, row in agents.items():
        mine = [s for s in steps if s["agent"] == name]
        assert row["prompt_tokens"] == sum(s["prompt_tokens"] for s in mine) > 0
        assert row["completion_tokens"] == sum(s["completion_tokens"] for s in mine) > 0
    assert sum(r["prompt_tokens"] for r in agents.values()) == totals["prompt_tokens"]

    text = CliRunner().invoke(app, ["runs", "show", run_id], env={"COLUMNS": "200"}).stdout
    assert f"totals: {totals['prompt_tokens']} tokens in, {totals['completion_tokens']} out" in text
    assert "3 steps (3 done)" in text
    assert "per agent" in text and "drafter" in text and "checker" in text


def test_streamed_pieces_are_printed_as_produced(capsys: pytest.CaptureFixture[str]) -> None:
    def step(key: str) -> Update:
        return Update("step", {"key": key, "status": "running", "kind": "agent",
                               "agent": "writer", "latency_s": 0.0})  # fmt: skip

    end = {"id": "r", "status": "done"}
    updates = [
        step("first"),
        *(Update("token", piece) for piece in ("The Sat", "urn V fl", "ew [1].\n")),
        step("second"),
        Update("token", "No newline"),
        Update("end", end),
    ]
    assert _follow(iter(updates), quiet=False) == end
    captured = capsys.readouterr()
    assert captured.out == "The Saturn V flew [1].\nNo newline"
    assert "first" in captured.err and "second" in captured.err
