"""What the pipeline calls a document version, and the keys and states it moves through.

Shared by the ledger halves (``documents.py``, ``progress.py``,
``contributions.py``) and the stages that read them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from janus_stack.ids import NAMESPACE

STAGES = ("store", "extract", "chunk", "embed", "index", "entities", "graph")
LIVE = ("pending", "running", "done")
UNFINISHED = ("pending", "running")
# Bound parameters per ``IN (...)``: far below SQLite's limit of 32,766 and
# PostgreSQL's 65,535, and small enough for the planner to use the index.
IN_BATCH = 500

T = TypeVar("T")


def document_key(tenant: str, source: str, sub_id: str) -> str:
    """The stable ID of a logical document: the same source keeps it across versions."""
    return str(uuid.uuid5(NAMESPACE, f"document:{tenant}:{source}#{sub_id}"))


def in_batches(items: Iterable[T]) -> list[Sequence[T]]:
    """``items`` in slices of ``IN_BATCH``, for queries with an ``IN`` list."""
    ordered = list(items)
    return [ordered[start : start + IN_BATCH] for start in range(0, len(ordered), IN_BATCH)]


@dataclass(frozen=True)
class VersionRef:
    """What the pipeline needs to know about one document version."""

    version_id: int
    document_id: str
    tenant: str
    doc_id: str
    source: str
    sub_id: str
    title: str
    object_key: str
    tags: dict[str, Any]
    stages: frozenset[str]
    status: str


@dataclass(frozen=True)
class VersionDraft:
    """A version the reader extracted and chunked, before the ledger records it.

    ``chunks`` are the column values of its chunk rows (ID, ordinal, text,
    offsets …) without the version, tenant and doc_id, which the ledger adds.
    """

    tenant: str
    source: str
    sub_id: str
    title: str
    media_type: str
    tags: dict[str, Any]
    doc_id: str
    object_key: str
    size: int
    chunks: Sequence[dict[str, Any]]

    @property
    def document_id(self) -> str:
        return document_key(self.tenant, self.source, self.sub_id)


def refs_by_tenant(refs: Iterable[VersionRef]) -> dict[str, list[VersionRef]]:
    """Versions grouped by tenant, in the order given: each projection batch is one tenant's."""
    grouped: dict[str, list[VersionRef]] = {}
    for ref in refs:
        grouped.setdefault(ref.tenant, []).append(ref)
    return grouped
