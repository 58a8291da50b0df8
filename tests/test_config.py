from __future__ import annotations

from pathlib import Path

import pytest

from janus_stack.config import AGENT_OUTPUT_ENV, load_settings
from janus_stack.errors import ConfigError


def test_defaults_put_every_embedded_store_under_home(tmp_path: Path) -> None:
    settings = load_settings(environ={"JANUS_HOME": str(tmp_path)}, cwd=tmp_path)
    assert settings.home == tmp_path
    assert settings.slots.relational == f"sqlite:///{tmp_path}/janus.db"
    assert settings.slots.vectors == f"qdrant+edge://{tmp_path}/vectors"
    assert settings.slots.queue == "inline://"
    assert settings.sources["slots.graph"] == "default"


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    (tmp_path / "janus.toml").write_text(
        'tenant = "from-file"\n[slots]\ncache = "redis://file:6379/0"\nqueue = "amqp://f/"\n'
    )
    env = {"JANUS_HOME": str(tmp_path / "home"), "JANUS_CACHE_URL": "redis://env:6379/0"}
    settings = load_settings({"queue_url": "inline://?workers=2"}, environ=env, cwd=tmp_path)
    assert settings.tenant == "from-file"
    assert settings.slots.cache == "redis://env:6379/0"
    assert settings.slots.queue == "inline://?workers=2"
    assert settings.sources["slots.cache"] == "env JANUS_CACHE_URL"
    assert settings.sources["slots.queue"] == "flag"
    assert settings.sources["tenant"] == str(tmp_path / "janus.toml")


def test_config_file_in_home_is_used_when_cwd_has_none(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "janus.toml").write_text("lock_timeout = 3.5\nrerank = 0.8\n")
    settings = load_settings(environ={"JANUS_HOME": str(home)}, cwd=tmp_path)
    assert settings.lock_timeout == 3.5 and settings.rerank == 0.8
    assert settings.config_file == home / "janus.toml"
    env = {"JANUS_HOME": str(home), "JANUS_RERANK": "0.5"}
    assert load_settings(environ=env, cwd=tmp_path).rerank == 0.5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("colour = 'blue'\n", "unknown setting 'colour'"),
        ("[slots]\nvectorz = 'x://'\n", "unknown slot 'vectorz'"),
        ("[slots]\ncache = 5\n", "slots.cache must be a URL string"),
        ("slots = 'x'\n", r"\[slots\] must be a table"),
        ("tenant = [\n", "not valid TOML"),
        ("lock_timeout = 'soon'\n", "lock_timeout"),
        ("lock_timeout = -1\n", "lock_timeout"),
        ("log_level = 'loud'\n", "log_level"),
        ("rerank = 1.5\n", "rerank"),
        ("[agent_output]\ncharset = 'emoji'\n", "janus.toml: agent_output: charset"),
        ("agent_output = 5\n", "janus.toml: agent_output: must be a table"),
    ],
)
def test_bad_config_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "janus.toml").write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={"JANUS_HOME": str(tmp_path)}, cwd=tmp_path)


def test_redacted_settings_hide_secrets(tmp_path: Path) -> None:
    settings = load_settings(
        {"cache_url": "redis://:topsecret@h:6379/0", "relational_url": "postgresql://u:env:PW@h/j"},
        environ={"JANUS_HOME": str(tmp_path), "PW": "pgsecret"},
        cwd=tmp_path,
    )
    text = repr(settings.redacted())
    assert "topsecret" not in text
    assert "pgsecret" not in text
    assert "env:PW" in text


def test_agent_output_comes_from_the_file_table_then_the_env_json(tmp_path: Path) -> None:
    env = {"JANUS_HOME": str(tmp_path)}
    assert load_settings(environ=env, cwd=tmp_path).agent_output == {}
    (tmp_path / "janus.toml").write_text(
        '[agent_output]\nmax_answer_chars = 240\ncharset = "basic"\n'
    )
    from_file = load_settings(environ=env, cwd=tmp_path)
    assert from_file.agent_output == {"max_answer_chars": 240, "charset": "basic"}
    assert from_file.sources["agent_output"] == str(tmp_path / "janus.toml")
    assert from_file.redacted()["agent_output"] == {"max_answer_chars": 240, "charset": "basic"}

    env[AGENT_OUTPUT_ENV] = '{"max_items": 5}'
    from_env = load_settings(environ=env, cwd=tmp_path)
    assert from_env.agent_output == {"max_items": 5}  # the env's replaces the file's table
    assert from_env.sources["agent_output"] == f"env {AGENT_OUTPUT_ENV}"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"max_items": 0}', "max_items: Input should be greater than or equal to 1"),
        ('{"charset": "emoji"}', "charset: Input should be 'unicode' or 'basic'"),
        ('{"max_tokens": 9}', "max_tokens: Extra inputs are not permitted"),
        ('{"max_items": ', "not valid JSON"),
        ("[240]", "must be a table"),
    ],
)
def test_a_bad_agent_output_names_the_variable_and_field(
    tmp_path: Path, value: str, message: str
) -> None:
    env = {"JANUS_HOME": str(tmp_path), AGENT_OUTPUT_ENV: value}
    with pytest.raises(ConfigError, match=f"^{AGENT_OUTPUT_ENV}: {message}"):
        load_settings(environ=env, cwd=tmp_path)
