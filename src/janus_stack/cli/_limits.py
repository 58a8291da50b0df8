"""The rate-limit options of ``janus serve`` and ``janus mcp``: the same token buckets per
API key and per tenant (``janus_stack.api.auth.rate_limit``), set the same way."""

from __future__ import annotations

from typing import Annotated, TypedDict

import typer

KEY_RATE, KEY_BURST, TENANT_RATE, TENANT_BURST = 50.0, 100, 200.0, 400

KeyRateOption = Annotated[
    float, typer.Option("--key-rate", min=0.001, help="Requests/s per API key.")
]
KeyBurstOption = Annotated[int, typer.Option("--key-burst", min=1, help="Burst per key.")]
TenantRateOption = Annotated[
    float, typer.Option("--tenant-rate", min=0.001, help="Requests/s per tenant.")
]
TenantBurstOption = Annotated[int, typer.Option("--tenant-burst", min=1, help="Burst per tenant.")]


class RateLimits(TypedDict):
    """The options as ``ServerOptions`` fields."""

    key_rate: float
    key_burst: int
    tenant_rate: float
    tenant_burst: int


def rate_limits(
    key_rate: float, key_burst: int, tenant_rate: float, tenant_burst: int
) -> RateLimits:
    return RateLimits(
        key_rate=key_rate, key_burst=key_burst, tenant_rate=tenant_rate, tenant_burst=tenant_burst
    )


def unchanged(limits: RateLimits) -> bool:
    """Whether none of ``limits`` was changed from its default."""
    return limits == rate_limits(KEY_RATE, KEY_BURST, TENANT_RATE, TENANT_BURST)
