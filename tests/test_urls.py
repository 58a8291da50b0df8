from __future__ import annotations

from pathlib import Path

import pytest

from janus_stack.errors import ConfigError, SlotURLError
from janus_stack.urls import SlotURL, redact


def test_literal_password_is_redacted_everywhere_it_is_shown() -> None:
    url = SlotURL.parse("cache", "redis://:hunter2@cache:6379/0?prefix=j", environ={})
    assert url.resolved == "redis://:hunter2@cache:6379/0?prefix=j"
    assert "hunter2" not in url.redacted
    assert "hunter2" not in str(url)
    assert "hunter2" not in repr(url)
    assert url.secrets == {"hunter2"}


def test_env_reference_resolves_and_stays_visible_as_reference() -> None:
    url = SlotURL.parse(
        "relational", "postgresql+psycopg://janus:env:PGPW@db/janus", environ={"PGPW": "s3cr3t"}
    )
    assert url.resolved == "postgresql+psycopg://janus:s3cr3t@db/janus"
    assert url.redacted == "postgresql+psycopg://janus:env:PGPW@db/janus"
    assert url.secrets == {"s3cr3t"}


def test_file_reference_resolves(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("abc123\n")
    url = SlotURL.parse("vectors", f"http://qdrant:6333?api_key=file:{secret}", environ={})
    assert url.query["api_key"] == "abc123"
    assert "abc123" not in url.redacted


def test_whole_url_may_be_a_reference() -> None:
    url = SlotURL.parse("cache", "env:CACHE", environ={"CACHE": "redis://:pw@h:1/0"})
    assert url.scheme == "redis"
    assert url.redacted == "env:CACHE"


def test_secret_query_values_are_masked() -> None:
    assert "tok" not in redact("http://q:6333?api_key=tok&collection=c")
    assert "collection=c" in redact("http://q:6333?api_key=tok&collection=c")


def test_unset_env_reference_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="env:NOPE"):
        SlotURL.parse("cache", "redis://:env:NOPE@h:6379", environ={})


def test_unreadable_file_reference_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        SlotURL.parse("cache", f"redis://:file:{tmp_path}/missing@h:6379", environ={})


@pytest.mark.parametrize("raw", ["", "   ", "no-scheme-here", "://x", "redis://h:notaport/0"])
def test_malformed_urls_name_the_slot(raw: str) -> None:
    with pytest.raises(SlotURLError, match="'cache'"):
        SlotURL.parse("cache", raw, environ={})


def test_tilde_expands_to_the_user_home() -> None:
    url = SlotURL.parse("objects", "file://~/.janus/objects", environ={})
    assert url.path == Path.home() / ".janus" / "objects"
    sqlite = SlotURL.parse("relational", "sqlite:///~/.janus/janus.db", environ={})
    assert sqlite.resolved == f"sqlite:///{Path.home()}/.janus/janus.db"
