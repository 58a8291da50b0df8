"""What ``janus verify`` finds, in the shape the CLI prints and ``janus repair`` acts on.

A report is a tree of sections (objects, vectors, keyword index, graph per
tenant), each ``ok`` when none of its findings found anything. Findings keep
a count and a few samples for people; :class:`RepairTargets` keeps every
disagreement in full for the repair that follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

SAMPLE = 10


@dataclass
class Finding:
    """One kind of disagreement: how many, and the first few examples."""

    count: int = 0
    sample: list[Any] = field(default_factory=list)
    limit: int = SAMPLE

    def add(self, item: Any) -> None:
        self.count += 1
        if len(self.sample) < self.limit:
            self.sample.append(item)

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "sample": list(self.sample)}


@dataclass
class RepairTargets:
    """Everything ``repair`` needs, in full (the findings keep only samples)."""

    missing_objects: list[str] = field(default_factory=list)
    orphan_objects: dict[str, datetime] = field(default_factory=dict)
    extra_points: list[str] = field(default_factory=list)
    extra_doc_ids: set[str] = field(default_factory=set)
    stale_points: list[str] = field(default_factory=list)
    index_doc_ids: set[str] = field(default_factory=set)
    leftover_doc_ids: list[str] = field(default_factory=list)
    missing_entities: list[str] = field(default_factory=list)
    missing_relations: list[str] = field(default_factory=list)
    short_support: list[str] = field(default_factory=list)
    rebuild_entities: set[str] = field(default_factory=set)
    full_graph: bool = False


@dataclass
class _Section:
    """A group of findings: ``ok`` when none of them found anything.

    Fields named in ``informational`` are reported but never make it fail;
    fields named in ``hidden`` are not reported.
    """

    informational: ClassVar[tuple[str, ...]] = ()
    hidden: ClassVar[tuple[str, ...]] = ()

    @property
    def ok(self) -> bool:
        skip = self.informational
        return all(_agrees(v) for k, v in vars(self).items() if k not in skip)

    def as_dict(self) -> dict[str, Any]:
        shown = {k: _plain(v) for k, v in vars(self).items() if k not in self.hidden}
        return {"ok": self.ok, **shown}


@dataclass(frozen=True)
class CountCheck:
    """The ledger's count (``ledger``; up to ``ledger_max`` with unfinished work) vs the store's."""

    ledger: int
    ledger_max: int
    store: int

    @property
    def ok(self) -> bool:
        return self.ledger <= self.store <= self.ledger_max

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "ledger": self.ledger, "store": self.store}


def _agrees(value: object) -> bool:  # RepairTargets and plain values always agree
    if isinstance(value, _Section):
        return value.ok
    if isinstance(value, Finding):
        return value.count == 0
    if isinstance(value, dict):
        return all(_agrees(v) for v in value.values())
    return not isinstance(value, CountCheck) or value.ok


def _plain(value: object) -> object:
    if isinstance(value, Finding | CountCheck | _Section):
        return value.as_dict()
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in sorted(value.items())}
    return value


@dataclass
class ObjectsCheck(_Section):
    expected: int = 0
    found: int = 0
    missing: Finding = field(default_factory=Finding)
    orphans: Finding = field(default_factory=Finding)


@dataclass
class VectorsCheck(_Section):
    model: str = ""
    expected: int = 0
    found: int = 0
    missing: Finding = field(default_factory=Finding)
    extra: Finding = field(default_factory=Finding)
    stale: Finding = field(default_factory=Finding)


@dataclass
class KeywordCheck(_Section):
    """The keyword index in the ledger: structure, and membership of live chunks."""

    engine: str = ""
    expected: int = 0
    found: int = 0
    broken: Finding = field(default_factory=Finding)
    missing: Finding = field(default_factory=Finding)
    extra: Finding = field(default_factory=Finding)


@dataclass
class GraphCheck(_Section):
    counts: dict[str, CountCheck] = field(default_factory=dict)
    missing_entities: Finding = field(default_factory=Finding)
    missing_relations: Finding = field(default_factory=Finding)
    support_mismatch: Finding = field(default_factory=Finding)

    @property
    def located(self) -> int:
        found = (self.missing_entities, self.missing_relations, self.support_mismatch)
        return sum(f.count for f in found)


@dataclass
class TenantReport(_Section):
    """One tenant's checks; unfinished work fails it, failed versions are only listed."""

    informational: ClassVar[tuple[str, ...]] = ("failed",)
    hidden: ClassVar[tuple[str, ...]] = ("tenant", "targets")

    tenant: str = ""
    objects: ObjectsCheck = field(default_factory=ObjectsCheck)
    vectors: VectorsCheck = field(default_factory=VectorsCheck)
    keyword: KeywordCheck = field(default_factory=KeywordCheck)
    graph: GraphCheck = field(default_factory=GraphCheck)
    leftovers: Finding = field(default_factory=Finding)
    unfinished: Finding = field(default_factory=Finding)
    failed: Finding = field(default_factory=Finding)
    targets: RepairTargets = field(default_factory=RepairTargets, repr=False, compare=False)


@dataclass
class VerifyReport:
    tenants: list[TenantReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tenants)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "tenants": {t.tenant: t.as_dict() for t in self.tenants}}
