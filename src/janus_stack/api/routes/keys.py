"""``/v1/keys``: create, list and revoke API keys (``keys:manage``: admin keys only).

Keys follow the tenant rule of every route: a request acts on its key's
tenant, or on ``?tenant=`` for an admin. Creating makes a key of that tenant;
listing shows that tenant's keys (``all_tenants=true``: every tenant's);
revoking finds a key only within that tenant, so another tenant's key ID is a
404 like another tenant's document. The token is in the answer to a create
and nowhere else (the ledger keeps its sha256); listings never carry a hash.

A key can only create keys whose permissions are within its own: an admin
key narrowed by scopes cannot mint an unrestricted one. Creating and
revoking append ``auth.key.created`` / ``auth.key.revoked``, and a revoked
key leaves this process's key cache at once instead of after
``key_cache_seconds``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from janus_stack.api.auth import Principal, forbid, require
from janus_stack.api.keys import KeyRecord, Permission, check_role, check_scopes, granted
from janus_stack.api.state import ApiState, api_state

router = APIRouter(prefix="/v1/keys", tags=["keys"])

KeyRef = Annotated[str, Path(min_length=1, max_length=64, description="Key ID or prefix.")]


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(max_length=32, description="admin, writer, reader or agent.")
    scopes: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=20, description="Narrow the role to these permissions."
    )
    name: str = Field(default="", max_length=200, description="A label for people.")


@router.post("", status_code=201, summary="Create a key of this tenant; the token is shown once")
async def create_key(
    request: Request,
    body: CreateKey,
    principal: Annotated[Principal, Depends(require(Permission.KEYS_MANAGE))],
) -> dict[str, Any]:
    state = api_state(request)
    role = check_role(body.role)
    scopes = check_scopes(role, body.scopes)
    beyond = granted(role, scopes) - principal.key.permissions
    if beyond:
        await forbid(
            request, principal,
            "a key cannot create a key with more permissions than its own: "
            + ", ".join(sorted(p.value for p in beyond)),
            "permission",
        )  # fmt: skip

    def create() -> dict[str, Any]:
        record, token = state.keys.create(
            tenant=principal.tenant, role=role.value, scopes=scopes, name=body.name
        )
        _event(state, principal, record, "auth.key.created")
        return {**record.as_dict(), "token": token}

    return await state.guard.read(create)


@router.get("", summary="This tenant's keys (never a token or hash)")
async def list_keys(
    request: Request,
    principal: Annotated[Principal, Depends(require(Permission.KEYS_MANAGE))],
    revoked: Annotated[bool, Query(description="Include revoked keys.")] = False,
    all_tenants: Annotated[bool, Query(description="Keys of every tenant.")] = False,
) -> dict[str, Any]:
    state = api_state(request)
    if all_tenants and Permission.TENANTS_ANY not in principal.key.permissions:
        await forbid(
            request, principal, "only keys granted 'tenants:any' may list every tenant's keys",
            "cross_tenant",
        )  # fmt: skip
    tenant = None if all_tenants else principal.tenant
    records = await state.guard.read(state.keys.list, tenant=tenant, revoked=revoked)
    return {"keys": [record.as_dict() for record in records]}


@router.delete("/{key}", summary="Revoke a key of this tenant (by ID or prefix)")
async def revoke_key(
    request: Request,
    key: KeyRef,
    principal: Annotated[Principal, Depends(require(Permission.KEYS_MANAGE))],
) -> dict[str, Any]:
    state = api_state(request)

    def revoke() -> KeyRecord:
        record = state.keys.revoke(key, tenant=principal.tenant)
        _event(state, principal, record, "auth.key.revoked")
        return record

    record = await state.guard.read(revoke)
    for token, (_expiry, cached) in list(state.key_cache.items()):
        if cached is not None and cached.id == record.id:
            del state.key_cache[token]
    return record.as_dict()


def _event(state: ApiState, principal: Principal, record: KeyRecord, type_: str) -> None:
    payload: dict[str, Any] = {"key_id": record.id}
    if type_ == "auth.key.created":
        payload.update(role=record.role.value, scopes=list(record.scopes))
    state.janus.events.append(
        tenant=record.tenant, actor=principal.actor, type=type_, subject=record.prefix,
        payload=payload,
    )  # fmt: skip
