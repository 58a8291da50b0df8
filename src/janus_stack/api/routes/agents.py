"""``/v1/agents`` (list, get, validate a manifest), ``/v1/workflows`` (list, validate).

A posted manifest or workflow is the file's text (YAML or JSON) as the
request body; the answer lists every problem with its line and field, as
``janus agents validate`` and ``janus workflows validate`` print them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from janus_stack.agents.registry import load_manifest
from janus_stack.agents.sourcefile import MAX_FILE_BYTES, Problem, SpecError, parse_text
from janus_stack.api.auth import Principal, require
from janus_stack.api.keys import Permission
from janus_stack.api.state import api_state
from janus_stack.errors import InvalidInputError, PayloadTooLargeError
from janus_stack.workflows.catalog import describe_workflows
from janus_stack.workflows.checks import check_workflow
from janus_stack.workflows.spec import WorkflowSpec

router = APIRouter(prefix="/v1", tags=["agents"])

SOURCE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


async def source_text(request: Request) -> str:
    """The request body as text: a YAML or JSON document of at most 1 MB."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FILE_BYTES:
        raise PayloadTooLargeError(f"the body is {declared} bytes; the limit is {MAX_FILE_BYTES}")
    body = await request.body()
    if len(body) > MAX_FILE_BYTES:
        raise PayloadTooLargeError(f"the body is {len(body)} bytes; the limit is {MAX_FILE_BYTES}")
    if not body.strip():
        raise InvalidInputError("the body is empty; post the YAML or JSON document")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"the body is not UTF-8: {exc.reason}") from None


def _problems(problems: list[Problem]) -> list[dict[str, Any]]:
    return [p.as_dict() for p in problems]


@router.get("/agents", summary="Every agent manifest, with the problems of invalid files")
async def list_agents(
    request: Request,
    _principal: Annotated[Principal, Depends(require(Permission.AGENTS_READ))],
) -> dict[str, Any]:
    work = api_state(request).workbench
    entries = await api_state(request).guard.read(work.registry.refresh)
    return {
        "agents": [
            {**e.manifest.summary(), "file": e.path.name, "valid": e.valid}
            for e in entries
            if e.manifest is not None
        ],
        "invalid": [
            {"file": e.path.name, "problems": _problems(e.problems)} for e in entries if not e.valid
        ],
        "tools": work.toolbox.names(),
    }


@router.get("/agents/{name}", summary="One agent's whole manifest")
async def get_agent(
    request: Request,
    _principal: Annotated[Principal, Depends(require(Permission.AGENTS_READ))],
    name: Annotated[str, Path(min_length=1, max_length=64)],
) -> dict[str, Any]:
    state = api_state(request)
    manifest = await state.guard.read(state.workbench.registry.get, name)
    return manifest.model_dump(mode="json")


@router.get("/workflows", summary="The workflows runs may name, with the problems of invalid files")
async def list_workflows(
    request: Request,
    _principal: Annotated[Principal, Depends(require(Permission.AGENTS_READ))],
) -> dict[str, Any]:
    state = api_state(request)
    work = state.workbench
    workflows = await state.guard.read(
        describe_workflows, work.workflow_dirs, work.registry, work.toolbox
    )
    return {"workflows": workflows}


@router.post(
    "/agents/validate",
    summary="Check a manifest (YAML/JSON body); every problem names its line and field",
    openapi_extra=SOURCE_BODY,
)
async def validate_agent(
    request: Request,
    _principal: Annotated[Principal, Depends(require(Permission.AGENTS_READ))],
) -> dict[str, Any]:
    text = await source_text(request)
    work = api_state(request).workbench
    try:
        source = parse_text(text, "<request>")
        manifest = load_manifest(source, work.toolbox, work.registry.allowed_tenants)
    except SpecError as exc:
        return {"ok": False, "problems": _problems(exc.problems), "agent": None}
    return {"ok": True, "problems": [], "agent": manifest.summary()}


@router.post(
    "/workflows/validate",
    summary="Check a workflow (YAML/JSON body): unknown agents/tools, loops, unreachable steps",
    openapi_extra=SOURCE_BODY,
)
async def validate_workflow(
    request: Request,
    _principal: Annotated[Principal, Depends(require(Permission.AGENTS_READ))],
) -> dict[str, Any]:
    text = await source_text(request)
    state = api_state(request)
    work = state.workbench

    def check() -> tuple[WorkflowSpec | None, list[Problem]]:
        try:
            source = parse_text(text, "<request>")
            spec = source.validate(WorkflowSpec)
        except SpecError as exc:
            return None, exc.problems
        return spec, check_workflow(source, spec, work.registry, work.toolbox)

    spec, problems = await state.guard.read(check)
    summary = None
    if spec is not None:
        summary = {"name": spec.name, "inputs": list(spec.inputs), "steps": len(spec.steps)}
    return {"ok": not problems, "problems": _problems(problems), "workflow": summary}
