"""Schemathesis against the live OpenAPI document of a real ``janus serve``.

Every operation is called with generated valid and invalid input under an
admin key: no answer may be a 5xx, and every answer's status and body must
be the ones the document declares. The server seeds documents and a paused
run so the ID routes meet real records as well as unknown IDs; deletion gets
a document of its own so the others stay for the rest of the run. The
example count is small and deadlines are off (2 cores), so CI stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from api_server import Server, make_keys, start_server, stop_server
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HUMAN_STEP = """\
name: approve
description: Wait for a human, then answer.
inputs:
  topic: {description: "What to approve."}
steps:
  - {id: ask, kind: human, prompt: "Approve {{ inputs.topic }}?"}
output:
  answer: "{{ steps.ask.output.text }}"
"""
DOCS = {
    "apollo.txt": b"Apollo 8 was the first crewed spacecraft to orbit the Moon in December 1968.\n",
    "gemini.txt": b"Gemini 7 flew in December 1965 with Frank Borman and James Lovell.\n",
    "scratch.txt": b"A scratch note that the generated DELETE calls may remove.\n",
}
MAX_EXAMPLES = 6
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server of this module's own, with an admin key, documents and a paused run."""
    home = tmp_path_factory.mktemp("schema-home")
    (home / "workflows").mkdir()
    (home / "workflows" / "approve.yaml").write_text(HUMAN_STEP)
    token = make_keys(home, {"admin": ("acme", "admin", [])})["admin"]
    server = start_server(
        home,
        "--max-upload-mb", "1",
        "--key-rate", "100000", "--key-burst", "100000",
        "--tenant-rate", "100000", "--tenant-burst", "100000",
        "--agents-dir", str(EXAMPLES / "agents"),
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    ids: dict[str, str] = {"token": token}
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
            for name, data in DOCS.items():
                uploaded = client.post("/v1/documents", files={"file": (name, data)})
                assert uploaded.status_code == 201, uploaded.text
                ids[name] = uploaded.json()["documents"][0]
            run = client.post("/v1/runs", json={"workflow": "approve", "inputs": {"topic": "x"}})
            assert run.status_code == 201, run.text
            ids["run"] = run.json()["id"]
        yield server, ids
    finally:
        stop_server(server)


def seeded_ids(ids: dict[str, str], method: str) -> dict[str, list[str]]:
    """The real IDs a path parameter may take besides generated ones (DELETE has its own)."""
    documents = (
        [ids["scratch.txt"]] if method == "DELETE" else [ids["apollo.txt"], ids["gemini.txt"]]
    )
    return {"document_id": documents, "run_id": [ids["run"]], "name": ["researcher"]}


def check_operation(operation: Any, server: Server, ids: dict[str, str]) -> None:
    """Generated valid and invalid calls of one operation; raises on the first failed check."""
    known = seeded_ids(ids, operation.method.upper())
    headers = {"Authorization": f"Bearer {ids['token']}"}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        cases = operation.as_strategy(generation_mode=mode)
        choices = st.fixed_dictionaries(
            {name: st.sampled_from([None, *values]) for name, values in known.items()}
        )

        @given(case=cases, chosen=choices)
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any, chosen: dict[str, str | None]) -> None:
            for name, value in chosen.items():
                if value is not None and case.path_parameters and name in case.path_parameters:
                    case.path_parameters[name] = value
            case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS, timeout=120)

        try:
            call()
        except Unsatisfiable:
            # No parameters and no body: there is no invalid input to send.
            assert mode is GenerationMode.NEGATIVE, operation.label


@pytest.mark.slow
def test_every_operation_conforms(seeded: tuple[Server, dict[str, str]]) -> None:
    server, ids = seeded
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    for operation in operations:
        try:
            check_operation(operation, server, ids)
        except (
            Exception,
            BaseExceptionGroup,
        ) as exc:  # every operation runs; all failures are reported together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
