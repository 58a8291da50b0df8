from __future__ import annotations

import json
import logging

import pytest
import structlog

from janus_stack.logs import configure_logging, reset_logging
from janus_stack.telemetry.requests import bound_request_id


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


def test_standard_library_lines_are_json_with_the_request_id_and_scrubbed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = "jns_0123abcd_" + "S" * 43
    configure_logging("info", {"from-env-secret"})
    with bound_request_id("req-42"):
        logging.getLogger("janus.api").warning(
            "refused %s for postgresql://u:from-env-secret@db/x", token
        )
        structlog.get_logger().info("bearer", header=f"Bearer {token}", nested={"k": [token]})
    logging.getLogger("janus.api").info("after the request")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert [line.get("request_id") for line in lines] == ["req-42", "req-42", None]
    text = json.dumps(lines)
    assert "from-env-secret" not in text and "S" * 20 not in text
    assert lines[0]["logger"] == "janus.api" and lines[0]["level"] == "warning"
    assert "jns_0123abcd_***" in lines[0]["event"]
    assert lines[1]["header"] == "Bearer ***" and lines[1]["nested"] == {"k": ["jns_0123abcd_***"]}


def test_reset_logging_removes_the_handler() -> None:
    configure_logging("debug", set())
    root = logging.getLogger()
    assert [h.get_name() for h in root.handlers].count("janus") == 1
    configure_logging("info", set())  # reconfiguring replaces, never stacks
    assert [h.get_name() for h in root.handlers].count("janus") == 1
    reset_logging()
    assert "janus" not in [h.get_name() for h in root.handlers]
    assert root.level == logging.WARNING
