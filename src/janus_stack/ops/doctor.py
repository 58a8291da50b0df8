"""``janus doctor``: open every slot and prove it works with a real round trip.

Each check is independent: one broken slot is reported with its reason and
a hint, and the others are still checked.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, select

from janus_stack.config import SLOTS
from janus_stack.context import Janus
from janus_stack.errors import IntegrityError, JanusError
from janus_stack.ledger.models import Tenant
from janus_stack.slots.llm import LanguageModel
from janus_stack.urls import redact


@dataclass(frozen=True)
class SlotCheck:
    """The outcome of one slot's round trip."""

    slot: str
    backend: str
    url: str
    ok: bool
    latency_ms: float
    error: str | None = None
    hint: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _probe_ledger(janus: Janus) -> str:
    """Write, read and delete a probe tenant row in one rolled-forward transaction."""
    ledger = janus.ledger
    probe_id = f"_doctor-{uuid.uuid4().hex[:12]}"
    with ledger.session() as session:
        session.add(Tenant(id=probe_id, name="janus doctor probe"))
    with ledger.session() as session:
        found = session.scalar(select(Tenant.name).where(Tenant.id == probe_id))
        session.execute(delete(Tenant).where(Tenant.id == probe_id))
    if found != "janus doctor probe":
        raise IntegrityError(f"relational: probe row {probe_id} did not read back")
    return ledger.dialect


def check_slot(janus: Janus, slot: str) -> SlotCheck:
    raw = getattr(janus.settings.slots, slot)
    url = redact(raw)
    backend = raw.split(":", 1)[0]
    start = time.perf_counter()
    note: str | None = None
    try:
        if slot == "relational":
            backend = _probe_ledger(janus)
        else:
            opened = janus.open_slot(slot)
            backend = opened.backend
            opened.probe()
            if isinstance(opened, LanguageModel):
                note = (
                    f"model {opened.model}"
                    if opened.configured
                    else "no model configured (answers are extractive)"
                )
    except JanusError as exc:
        return SlotCheck(
            slot=slot,
            backend=backend,
            url=url,
            ok=False,
            latency_ms=(time.perf_counter() - start) * 1000,
            error=str(exc),
            hint=exc.hint,
        )
    return SlotCheck(
        slot=slot,
        backend=backend,
        url=url,
        ok=True,
        latency_ms=(time.perf_counter() - start) * 1000,
        note=note,
    )


def run_doctor(janus: Janus) -> list[SlotCheck]:
    return [check_slot(janus, slot) for slot in SLOTS]
