"""What the sync and async clients share: how each call is built and how answers are read.

A method of either client is one line: build a :class:`Call` here, send it
with its transport, read the answer with :func:`read`. So the two clients
cannot drift apart: they differ only in ``await``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from janus_stack.client._errors import error_for

FileInput = str | Path | bytes | IO[bytes]


@dataclass
class Call:
    method: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    json: Any = None
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    raw: bool = False  # return bytes, not JSON
    content: bytes | None = None  # a raw request body (a posted YAML/JSON document)


def _params(**values: Any) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            pairs.extend((key, str(item)) for item in value)
        elif isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        else:
            pairs.append((key, value.isoformat() if hasattr(value, "isoformat") else str(value)))
    return pairs


def read(response: httpx.Response, call: Call) -> Any:
    """The JSON body (or bytes) of a 2xx answer; otherwise raise the matching error."""
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = {"error": {"message": response.text[:500]}}
        if not isinstance(body, dict):
            body = {"error": {"message": str(body)[:500]}}
        raise error_for(response.status_code, body, dict(response.headers))
    if call.raw:
        return response.content
    if not response.content:
        return None
    return response.json()


def health() -> Call:
    return Call("GET", "/healthz")


def ready() -> Call:
    return Call("GET", "/readyz")


def metrics() -> Call:
    return Call("GET", "/metrics", raw=True)


def system() -> Call:
    return Call("GET", "/v1/system")


def upload(
    file: FileInput,
    *,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    entities: bool = True,
    tenant: str | None = None,
) -> Call:
    if isinstance(file, str | Path):
        path = Path(file)
        content: bytes | IO[bytes] = path.read_bytes()
        name = name or path.name
    else:
        content = file
    if not name:
        raise ValueError("upload needs name= when given bytes or a stream")
    data: dict[str, Any] = {"tag": [f"{k}={v}" for k, v in (tags or {}).items()]}
    if not entities:
        data["entities"] = "false"
    return Call(
        "POST",
        "/v1/documents",
        params=_params(tenant=tenant),
        files={"file": (name, content, "application/octet-stream")},
        data=data,
    )


def list_documents(
    *,
    status: str | None = None,
    title: str | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    limit: int = 50,
    offset: int = 0,
    tenant: str | None = None,
) -> Call:
    tag = [f"{k}={v}" for k, v in (tags or {}).items()] or None
    params = _params(
        status=status, title=title, name=name, tag=tag, limit=limit, offset=offset, tenant=tenant
    )
    return Call("GET", "/v1/documents", params=params)


def get_document(
    document_id: str, *, chunk_limit: int = 100, chunk_offset: int = 0, tenant: str | None = None
) -> Call:
    params = _params(chunk_limit=chunk_limit, chunk_offset=chunk_offset, tenant=tenant)
    return Call("GET", f"/v1/documents/{_segment(document_id)}", params=params)


def download(document_id: str, *, tenant: str | None = None) -> Call:
    path = f"/v1/documents/{_segment(document_id)}/raw"
    return Call("GET", path, params=_params(tenant=tenant), raw=True)


def delete_document(document_id: str, *, tenant: str | None = None) -> Call:
    path = f"/v1/documents/{_segment(document_id)}"
    return Call("DELETE", path, params=_params(tenant=tenant))


def memory(
    topic: str,
    *,
    k: int = 8,
    filters: Mapping[str, str | int] | None = None,
    tenant: str | None = None,
) -> Call:
    given = [f"{key}={value}" for key, value in (filters or {}).items()] or None
    return Call("GET", "/v1/memory", params=_params(topic=topic, k=k, filter=given, tenant=tenant))


def search(
    query: str,
    *,
    mode: str = "hybrid",
    k: int = 10,
    filters: Mapping[str, str | int] | None = None,
    tenant: str | None = None,
) -> Call:
    body = {"query": query, "mode": mode, "k": k, "filters": dict(filters) if filters else None}
    return Call("POST", "/v1/search", params=_params(tenant=tenant), json=body)


def ask(
    question: str,
    *,
    filters: Mapping[str, str | int] | None = None,
    k: int = 8,
    rounds: int = 2,
    stream: bool = False,
    tenant: str | None = None,
) -> Call:
    body = {
        "question": question,
        "filters": dict(filters) if filters else None,
        "k": k,
        "rounds": rounds,
        "stream": stream,
    }
    return Call("POST", "/v1/ask", params=_params(tenant=tenant), json=body)


def events(
    *,
    type: str | None = None,
    actor: str | None = None,
    subject: str | None = None,
    since: Any = None,
    until: Any = None,
    after: int | None = None,
    limit: int = 100,
    all_tenants: bool = False,
    tenant: str | None = None,
) -> Call:
    params = _params(
        type=type,
        actor=actor,
        subject=subject,
        since=since,
        until=until,
        after=after,
        limit=limit,
        all_tenants=all_tenants or None,
        tenant=tenant,
    )
    return Call("GET", "/v1/events", params=params)


def verify_events() -> Call:
    return Call("POST", "/v1/events/verify")


SourceInput = str | Path | Mapping[str, Any]


def _source(source: SourceInput) -> bytes:
    """A manifest or workflow as the body: YAML/JSON text, a file path, or a mapping."""
    if isinstance(source, Path):
        return source.read_bytes()
    if isinstance(source, str):
        return source.encode()
    return json.dumps(dict(source)).encode()


def list_agents() -> Call:
    return Call("GET", "/v1/agents")


def get_agent(name: str) -> Call:
    return Call("GET", f"/v1/agents/{_segment(name)}")


def list_workflows() -> Call:
    return Call("GET", "/v1/workflows")


def validate_agent(source: SourceInput) -> Call:
    return Call("POST", "/v1/agents/validate", content=_source(source))


def validate_workflow(source: SourceInput) -> Call:
    return Call("POST", "/v1/workflows/validate", content=_source(source))


def start_run(
    workflow: str | None = None,
    *,
    spec: SourceInput | None = None,
    inputs: Mapping[str, Any] | None = None,
    tenant: str | None = None,
) -> Call:
    body: dict[str, Any] = {"inputs": dict(inputs or {})}
    if workflow is not None:
        body["workflow"] = workflow
    if spec is not None:
        body["spec"] = spec.read_text() if isinstance(spec, Path) else (
            spec if isinstance(spec, str) else dict(spec)
        )  # fmt: skip
    return Call("POST", "/v1/runs", params=_params(tenant=tenant), json=body)


def list_runs(
    *,
    status: str | None = None,
    workflow: str | None = None,
    limit: int = 50,
    offset: int = 0,
    tenant: str | None = None,
) -> Call:
    params = _params(status=status, workflow=workflow, limit=limit, offset=offset, tenant=tenant)
    return Call("GET", "/v1/runs", params=params)


def get_run(run_id: str, *, tenant: str | None = None) -> Call:
    return Call("GET", f"/v1/runs/{_segment(run_id)}", params=_params(tenant=tenant))


def steer_run(run_id: str, action: str, *, tenant: str | None = None) -> Call:
    path = f"/v1/runs/{_segment(run_id)}/{action}"
    return Call("POST", path, params=_params(tenant=tenant))


def resume_run(run_id: str, *, rerun_interrupted: bool = False, tenant: str | None = None) -> Call:
    path = f"/v1/runs/{_segment(run_id)}/resume"
    body = {"rerun_interrupted": rerun_interrupted}
    return Call("POST", path, params=_params(tenant=tenant), json=body)


def run_feedback(
    run_id: str, text: str, *, resume: bool = False, tenant: str | None = None
) -> Call:
    path = f"/v1/runs/{_segment(run_id)}/feedback"
    body = {"text": text, "resume": resume}
    return Call("POST", path, params=_params(tenant=tenant), json=body)


def stream_run(
    run_id: str, *, after_event: int = 0, after_token: int = 0, tenant: str | None = None
) -> Call:
    params = _params(after_event=after_event or None, after_token=after_token or None,
                     tenant=tenant)  # fmt: skip
    return Call("GET", f"/v1/runs/{_segment(run_id)}/stream", params=params)


def create_key(
    role: str, *, scopes: Sequence[str] = (), name: str = "", tenant: str | None = None
) -> Call:
    body = {"role": role, "scopes": list(scopes), "name": name}
    return Call("POST", "/v1/keys", params=_params(tenant=tenant), json=body)


def list_keys(
    *, revoked: bool = False, all_tenants: bool = False, tenant: str | None = None
) -> Call:
    params = _params(revoked=revoked or None, all_tenants=all_tenants or None, tenant=tenant)
    return Call("GET", "/v1/keys", params=params)


def revoke_key(key: str, *, tenant: str | None = None) -> Call:
    return Call("DELETE", f"/v1/keys/{_segment(key)}", params=_params(tenant=tenant))


def socket_url(
    base_url: str,
    run_id: str,
    *,
    after_event: int = 0,
    after_token: int = 0,
    tenant: str | None = None,
) -> str:
    """The ``ws://`` (or ``wss://``) URL of ``/v1/runs/{id}/ws``."""
    from urllib.parse import urlencode  # noqa: PLC0415

    base = base_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base.removeprefix("https://")
    elif base.startswith("http://"):
        base = "ws://" + base.removeprefix("http://")
    params = _params(after_event=after_event or None, after_token=after_token or None,
                     tenant=tenant)  # fmt: skip
    query = f"?{urlencode(params)}" if params else ""
    return f"{base}/v1/runs/{_segment(run_id)}/ws{query}"


def _segment(value: str) -> str:
    from urllib.parse import quote  # noqa: PLC0415

    return quote(value, safe="")


def headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    found = {"User-Agent": "janus-client"}
    if api_key:
        found["Authorization"] = f"Bearer {api_key}"
    found.update(extra or {})
    return found


def request_kwargs(call: Call) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"params": call.params}
    if call.json is not None:
        kwargs["content"] = json.dumps(call.json).encode()
        kwargs["headers"] = {"Content-Type": "application/json"}
    if call.files is not None:
        kwargs["files"] = call.files
        kwargs["data"] = call.data
    if call.content is not None:
        kwargs["content"] = call.content
        kwargs["headers"] = {"Content-Type": "application/yaml"}
    return kwargs


__all__: Sequence[str] = ["Call", "read"]
