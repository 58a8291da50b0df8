"""Operations: ``/healthz``, ``/readyz``, ``/metrics`` and ``/v1/system``.

``/healthz`` answers from the event loop without touching a store (is the
process alive?). ``/readyz`` runs ``janus doctor``'s round trip on every
slot (under the write lock: the probes write) and caches the outcome for
``ready_cache_seconds`` so a busy load balancer cannot turn it into load;
503 when any slot fails. Both stay unauthenticated, as probes expect, and
tell nothing beyond "up" and which slots answer.

``/metrics`` is the Prometheus text format. It describes every tenant's
traffic, so by default it asks for an API key granting ``metrics:read``
(an admin key, or one narrowed to that scope for the scraper), but takes no
rate token: a scrape must succeed while the tenant is busy. ``janus serve
--metrics-auth open`` serves it to anyone who reaches the port; ``off``
leaves it only on the separate ``--metrics-port`` listener (see
:class:`~janus_stack.api.state.ServerOptions`).
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from janus_stack.api.auth import Principal, authenticate, permit, require
from janus_stack.api.keys import Permission
from janus_stack.api.metrics import CONTENT_TYPE
from janus_stack.api.state import ApiState, api_state
from janus_stack.config import SLOTS
from janus_stack.errors import NotFoundError
from janus_stack.ledger.models import Task
from janus_stack.ops.doctor import check_slot

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process serves requests")
async def healthz(request: Request) -> dict[str, Any]:
    state = api_state(request)
    return {"status": "ok", "uptime_seconds": round(time.time() - state.started_at, 3)}


@router.get(
    "/readyz",
    summary="Readiness: every slot passes its round trip",
    responses={503: {"description": "A slot failed its round trip: the body lists every slot"}},
)
async def readyz(request: Request) -> JSONResponse:
    state = api_state(request)
    now = time.monotonic()
    if state.readiness is None or state.readiness[0] <= now:
        checks = await state.guard.write(_check_all, state)
        state.readiness = (now + state.options.ready_cache_seconds, checks)
    checks = state.readiness[1]
    ready = all(check["ok"] for check in checks)
    body = {"status": "ready" if ready else "unavailable", "slots": checks}
    return JSONResponse(body, 200 if ready else 503)


def _check_all(state: ApiState) -> list[dict[str, Any]]:
    slots = [s for s in SLOTS if s != "queue" or state.settings.slots.queue != "inline://"]
    return [check_slot(state.janus, slot).as_dict() for slot in slots]


@router.get(
    "/metrics",
    summary="Prometheus metrics (a key with metrics:read, unless the server opened them)",
    response_class=Response,
)
async def metrics(request: Request) -> Response:
    state = api_state(request)
    access = state.options.metrics_auth
    if access == "off":
        raise NotFoundError(
            "this server serves /metrics only on its metrics port",
            hint="scrape the --metrics-port listener",
        )
    if access == "key":
        await permit(request, await authenticate(request), Permission.METRICS_READ)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/v1/system", summary="CPU, memory, disk and queue depths of this server")
async def system(
    request: Request,
    _principal: Annotated[Principal, Depends(require(Permission.SYSTEM_READ))],
) -> dict[str, Any]:
    state = api_state(request)
    queues = await state.guard.read(_queue_depths, state)
    return {
        **_machine(state),
        "queue": queues,
        "http_in_flight": state.metrics.active,
        "uptime_seconds": round(time.time() - state.started_at, 3),
        "pid": os.getpid(),
    }


def _queue_depths(state: ApiState) -> dict[str, int]:
    with state.janus.ledger.session() as session:
        rows = session.execute(select(Task.status, func.count()).group_by(Task.status)).all()
    return {str(status): int(count) for status, count in rows}


def _machine(state: ApiState) -> dict[str, Any]:
    """CPU, memory and disk: psutil when installed, else /proc and os."""
    disk = shutil.disk_usage(state.settings.home)
    data: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "disk": {"path": str(state.settings.home), "total": disk.total, "free": disk.free},
    }
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]  # noqa: PLC0415
    except ImportError:
        data["memory"] = _proc_meminfo()
        data["process_rss"] = _proc_rss()
        data["source"] = "proc"
        return data
    memory = psutil.virtual_memory()
    data["cpu_percent"] = psutil.cpu_percent(interval=None)
    data["memory"] = {"total": memory.total, "available": memory.available}
    data["process_rss"] = psutil.Process().memory_info().rss
    data["source"] = "psutil"
    return data


def _proc_meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    values[key] = int(rest.split()[0]) * 1024
    except OSError:
        return {}
    return {"total": values.get("MemTotal", 0), "available": values.get("MemAvailable", 0)}


def _proc_rss() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
