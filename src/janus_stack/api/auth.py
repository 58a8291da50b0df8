"""Authentication, authorisation, tenant resolution and rate limits for every route.

Every route under ``/v1`` declares the permission it needs with
``Depends(require(Permission.X))``; the dependency

1. reads ``Authorization: Bearer <token>`` (or ``X-API-Key``) and verifies
   it against the ledger (a verified key is cached for
   ``key_cache_seconds``) → 401 when missing, unknown or revoked;
2. checks the key's role and scopes grant the permission → 403;
3. resolves the tenant: always the key's own, except that an admin may act
   on another tenant with ``?tenant=`` (a non-admin naming any other tenant
   gets 403, never that tenant's data);
4. takes a token from the key's and the tenant's bucket in the cache slot
   → 429 with ``Retry-After`` (:func:`rate_limit`, which the in-process
   ``janus mcp`` applies per tool call too).

``/metrics`` runs steps 1 and 2 only (:func:`permit`): the metrics belong to
no tenant, and a scrape must not fail because the scraper's tenant is busy.

Every refusal of steps 1-3 is appended to the event log as
``auth.refused`` (with the reason, route and client address, never the
token); a rate-limit refusal as ``auth.rate_limited`` at most once per key
per minute (the cache slot remembers that it was logged), so a client
hammering a limit cannot flood the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, Query, Request
from starlette.requests import HTTPConnection

from janus_stack.api.errors import ForbiddenError, UnauthorizedError
from janus_stack.api.keys import KeyRecord, Permission
from janus_stack.api.metrics import Metrics
from janus_stack.api.state import ApiState, ServerOptions, api_state
from janus_stack.context import Janus
from janus_stack.errors import JanusError, RateLimitedError
from janus_stack.ids import check_tenant

log = logging.getLogger("janus.api")

ANONYMOUS_TENANT = "_api"
RATE_LOG_SECONDS = 60.0


@dataclass(frozen=True)
class Principal:
    """Who is calling, and on which tenant's data this request acts."""

    key: KeyRecord
    tenant: str

    @property
    def actor(self) -> str:
        return f"key:{self.key.prefix}"


def _token(request: HTTPConnection) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return ""
    key = request.headers.get("x-api-key")
    return key.strip() if key is not None else None


async def _lookup(state: ApiState, token: str) -> KeyRecord | None:
    now = time.monotonic()
    cached = state.key_cache.get(token)
    if cached is not None and cached[0] > now:
        return cached[1]
    record = await anyio.to_thread.run_sync(state.keys.verify, token)
    if len(state.key_cache) > 10_000:
        state.key_cache.clear()
    state.key_cache[token] = (now + state.options.key_cache_seconds, record)
    return record


async def _refuse(
    state: ApiState,
    request: HTTPConnection,
    error: JanusError,
    reason: str,
    *,
    tenant: str = ANONYMOUS_TENANT,
    subject: str = "anonymous",
    extra: dict[str, Any] | None = None,
) -> JanusError:
    """Count and log a refusal; return the error for the caller to raise."""
    state.metrics.auth_refusals.labels(reason).inc()
    route = request.scope.get("route")
    payload = {
        "reason": reason,
        "method": request.scope.get("method", "WEBSOCKET"),
        "route": getattr(route, "path", request.url.path),
        "client": request.client.host if request.client else None,
        **(extra or {}),
    }
    await anyio.to_thread.run_sync(
        lambda: append_refusal(
            state.janus, actor="api", tenant=tenant, subject=subject, payload=payload
        )
    )
    return error


def append_refusal(
    janus: Janus, *, actor: str, tenant: str, subject: str, payload: dict[str, Any]
) -> None:
    """Append an ``auth.refused`` event (the API's and ``janus mcp``'s refusals alike).

    A log that cannot be written is reported and swallowed: the refusal stands either way.
    """
    try:
        janus.events.append(
            tenant=tenant, actor=actor, type="auth.refused", subject=subject, payload=payload
        )
    except JanusError:
        log.exception("could not append an auth.refused event")


def permission_refusal(key: KeyRecord, permission: Permission) -> ForbiddenError | None:
    """The 403 for a key whose role and scopes do not grant ``permission``; None if they do."""
    if permission in key.permissions:
        return None
    return ForbiddenError(
        f"role {key.role.value!r}"
        + (f" with scopes {', '.join(key.scopes)}" if key.scopes else "")
        + f" does not grant {permission.value!r}"
    )


async def authenticate(request: HTTPConnection) -> KeyRecord:
    state = api_state(request)
    token = _token(request)
    if token is None:
        raise await _refuse(
            state,
            request,
            UnauthorizedError(
                "this route needs an API key",
                hint="send 'Authorization: Bearer <key>'; `janus keys create` makes one",
            ),
            "missing_key",
        )
    record = await _lookup(state, token) if token else None
    if record is None:
        raise await _refuse(
            state,
            request,
            UnauthorizedError("the API key is malformed, unknown or revoked"),
            "invalid_key",
            subject=token[:12] if token.startswith("jns_") else "anonymous",
        )
    return record


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """The dependency a route declares: an authenticated principal allowed ``permission``."""

    async def dependency(
        request: Request,
        key: Annotated[KeyRecord, Depends(authenticate)],
        tenant: Annotated[
            str | None,
            Query(
                max_length=64,
                description="Admin keys only: act on this tenant instead of the key's own.",
            ),
        ] = None,
    ) -> Principal:
        return await authorize(request, key, permission, tenant)

    return dependency


async def authorize(
    request: HTTPConnection, key: KeyRecord, permission: Permission, tenant: str | None
) -> Principal:
    """Check ``key`` grants ``permission`` on ``tenant`` (default: its own); take a rate token.

    The body of every route's dependency, and what a WebSocket route calls itself
    (FastAPI's ``Request`` dependencies do not apply to WebSocket connections).
    """
    state = api_state(request)
    await permit(request, key, permission)
    chosen = key.tenant
    if tenant is not None and tenant != key.tenant:
        if Permission.TENANTS_ANY not in key.permissions:
            raise await _refuse(
                state,
                request,
                ForbiddenError(
                    f"this key belongs to tenant {key.tenant!r} and cannot act on another tenant",
                    hint="omit ?tenant=; a key only ever sees its own tenant",
                ),
                "cross_tenant",
                tenant=key.tenant,
                subject=key.prefix,
                extra={"requested_tenant": tenant[:64]},
            )
        chosen = check_tenant(tenant)
    principal = Principal(key=key, tenant=chosen)
    await _rate_limit(state, principal)
    return principal


async def permit(request: HTTPConnection, key: KeyRecord, permission: Permission) -> None:
    """Refuse (403, logged) a key whose role and scopes do not grant ``permission``.

    No rate token is taken: ``/metrics`` uses this alone, so a scraper keeps
    reporting while its tenant's traffic exhausts the tenant's bucket.
    """
    refusal = permission_refusal(key, permission)
    if refusal is not None:
        raise await _refuse(
            api_state(request),
            request,
            refusal,
            "permission",
            tenant=key.tenant,
            subject=key.prefix,
            extra={"permission": permission.value},
        )


async def _rate_limit(state: ApiState, principal: Principal) -> None:
    await anyio.to_thread.run_sync(
        lambda: rate_limit(state.janus, state.options, state.metrics, principal.key, actor="api")
    )


def rate_limit(
    janus: Janus, options: ServerOptions, metrics: Metrics, key: KeyRecord, *, actor: str
) -> None:
    """Take a token from the key's bucket, then from its tenant's, in the cache slot.

    The API and the in-process ``janus mcp`` both call this, with the same
    bucket names, so one key has one budget whichever way it comes in (and,
    with a ``redis://`` cache, across processes).

    Raises:
        RateLimitedError: a bucket is empty; the refusal is counted and logged
            (at most once a minute per key and scope).
    """
    buckets = (
        ("key", f"janus:rate:key:{key.id}", options.key_rate, options.key_burst),
        ("tenant", f"janus:rate:tenant:{key.tenant}", options.tenant_rate, options.tenant_burst),
    )
    for scope, bucket, rate, burst in buckets:
        try:
            janus.cache.take_or_raise(bucket, rate=rate, burst=burst)
        except RateLimitedError as exc:
            metrics.rate_limited.labels(scope).inc()
            _log_rate_limit(janus, key, scope, exc.retry_after, actor)
            raise RateLimitedError(
                f"rate limit of this {scope} exceeded; retry in {exc.retry_after:.2f} s",
                retry_after=exc.retry_after,
            ) from None


async def forbid(request: HTTPConnection, principal: Principal, message: str, reason: str) -> None:
    """Refuse a principal something a route decides itself (logged like every refusal)."""
    raise await _refuse(
        api_state(request),
        request,
        ForbiddenError(message),
        reason,
        tenant=principal.key.tenant,
        subject=principal.key.prefix,
    )


def _log_rate_limit(janus: Janus, key: KeyRecord, scope: str, retry: float, actor: str) -> None:
    marker = f"janus:rate-logged:{scope}:{key.id}"
    try:
        if janus.cache.get(marker) is not None:
            return
        janus.cache.set(marker, b"1", ttl=RATE_LOG_SECONDS)
        janus.events.append(
            tenant=key.tenant,
            actor=actor,
            type="auth.rate_limited",
            subject=key.prefix,
            payload={"scope": scope, "retry_after": round(retry, 3)},
        )
    except JanusError:
        log.exception("could not append an auth.rate_limited event")
