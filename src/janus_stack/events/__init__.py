"""The append-only, hash-chained event log (ARCHITECTURE.md §1.6).

Everything that changes state appends an event; ``EventLog.verify`` proves
the log untampered. The hashing rules are in ``janus_stack.events.chain``.
"""

from __future__ import annotations

from janus_stack.events.chain import (
    GENESIS_HASH,
    ChainChecker,
    EventRecord,
    VerifyReport,
    canonical_json,
    event_hash,
)
from janus_stack.events.fields import EventDraft
from janus_stack.events.log import MAX_QUERY_LIMIT, EventLog

__all__ = [
    "GENESIS_HASH",
    "MAX_QUERY_LIMIT",
    "ChainChecker",
    "EventDraft",
    "EventLog",
    "EventRecord",
    "VerifyReport",
    "canonical_json",
    "event_hash",
]
