from __future__ import annotations

import json

import pytest
import structlog

from janus_stack.logs import configure_logging


def test_secrets_never_reach_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", {"from-env-secret"})
    log = structlog.get_logger()
    log.info(
        "connecting",
        url="redis://:literal-pw@cache:6379/0",
        detail="token is from-env-secret",
        error=ConnectionError("failed for postgresql://u:from-env-secret@db/x"),
    )
    line = capsys.readouterr().err.strip()
    record = json.loads(line)
    assert "literal-pw" not in line
    assert "from-env-secret" not in line
    assert record["event"] == "connecting"
    assert record["url"] == "redis://:***@cache:6379/0"
