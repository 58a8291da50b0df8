from __future__ import annotations

from pathlib import Path

import pytest

from janus_stack.config import load_settings
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
    (home / "janus.toml").write_text("lock_timeout = 3.5\n")
    settings = load_settings(environ={"JANUS_HOME": str(home)}, cwd=tmp_path)
    assert settings.lock_timeout == 3.5
    assert settings.config_file == home / "janus.toml"


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
