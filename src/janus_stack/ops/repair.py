"""``janus repair``: make the object store, vector index and graph agree with the ledger.

Repair invents nothing: the ledger says what should exist, and every fix
goes through the slot APIs or the ingestion pipeline's own stages, so a
repaired store holds what a clean ingest would have produced. A pass over
one tenant, driven by a ``verify`` report:

1. unfinished versions are resumed (``Ingestor.resume``) and the pass ends
   there, since resuming changes what the other steps would see;
2. interrupted removals (ledger chunks of a doc_id no version carries) are
   finished with ``remove_doc_id``;
3. what nothing live supports is deleted: extra and stale points, the graph
   contributions of dead doc_ids, and orphan objects older than a grace
   period (an ingest stores the object just before it records the version);
4. what is missing is re-projected: the stages of the affected ``done``
   versions go back to ``pending``, their status to ``running``, and the
   ``Projector`` redoes them (it skips points and items already present);
5. a lost raw object is put back from its source file when that still
   holds the same bytes; otherwise it is reported as lost.

Passes repeat while the tenant still disagrees and the last pass changed
something, because one fix can uncover the next (an entity put back shows
which mentions are still short).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import or_, select, update

from janus_stack.context import Janus
from janus_stack.ingest.documents import DocumentLedger
from janus_stack.ingest.pipeline import IngestOptions, Ingestor
from janus_stack.ingest.projection import Projector
from janus_stack.ingest.removal import remove_doc_id
from janus_stack.ledger.models import Document, DocumentVersion, Mention, Relation, RelationSupport
from janus_stack.ops.verify import live_doc_ids, verify
from janus_stack.ops.verify_report import TenantReport, VerifyReport

T = TypeVar("T")
MAX_PASSES = 4
ORPHAN_GRACE = timedelta(minutes=15)
_BATCH = 500
_RUN_BATCH = 64


@dataclass
class RepairActions:
    """What repair did to one tenant, summed over its passes."""

    resumed_versions: int = 0
    leftovers_removed: int = 0
    points_deleted: int = 0
    stale_points_deleted: int = 0
    graph_documents_removed: int = 0
    entities_rebuilt: int = 0
    versions_reindexed: int = 0
    versions_regraphed: int = 0
    objects_restored: int = 0
    orphans_deleted: int = 0
    orphans_kept_recent: int = 0
    objects_lost: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        counted = asdict(self)
        del counted["orphans_kept_recent"], counted["objects_lost"]
        return sum(counted.values())

    def add(self, other: RepairActions) -> None:
        for name, value in vars(other).items():
            if name == "objects_lost":
                self.objects_lost = sorted(set(self.objects_lost) | set(value))
            elif name == "orphans_kept_recent":
                self.orphans_kept_recent = value
            else:
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RepairReport:
    """The verify report before repair, the one after, and what was done in between."""

    before: VerifyReport
    after: VerifyReport
    actions: dict[str, RepairActions] = field(default_factory=dict)
    passes: int = 0

    @property
    def ok(self) -> bool:
        return self.after.ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "passes": self.passes,
            "actions": {tenant: a.as_dict() for tenant, a in sorted(self.actions.items())},
            "before": self.before.as_dict(),
            "after": self.after.as_dict(),
        }


def repair(
    janus: Janus, tenant: str | None = None, *, orphan_grace: timedelta = ORPHAN_GRACE
) -> RepairReport:
    """Verify, fix every tenant that disagrees, and verify again."""
    before = verify(janus, tenant)
    result = RepairReport(before=before, after=before)
    finals: list[TenantReport] = []
    for first in before.tenants:
        current, actions = first, RepairActions()
        passes = 0
        while not current.ok and passes < MAX_PASSES:
            done = _repair_pass(janus, current, orphan_grace)
            actions.add(done)
            passes += 1
            current = verify(janus, current.tenant).tenants[0]
            if not done.changes:
                break
        finals.append(current)
        result.passes = max(result.passes, passes)
        if passes:
            result.actions[current.tenant] = actions
            janus.events.append(
                tenant=current.tenant,
                actor="ops",
                type="ops.repair",
                subject=current.tenant,
                payload={"ok": current.ok, "passes": passes, **actions.as_dict()},
            )
    result.after = VerifyReport(tenants=finals)
    return result


def _repair_pass(janus: Janus, report: TenantReport, orphan_grace: timedelta) -> RepairActions:
    tenant, targets, actions = report.tenant, report.targets, RepairActions()
    if report.unfinished.count:
        ingestor = Ingestor(janus, janus.embedder, IngestOptions())
        actions.resumed_versions = ingestor.resume(tenant)
        return actions
    documents = DocumentLedger(janus.ledger)
    for doc_id in targets.leftover_doc_ids:
        remove_doc_id(janus, documents, tenant, doc_id)
        actions.leftovers_removed += 1
    leftovers = set(targets.leftover_doc_ids)
    for part in _batches(targets.extra_points, 1000):
        janus.vectors.delete_ids(tenant, part)
        actions.points_deleted += len(part)
    for doc_id in sorted(targets.extra_doc_ids - leftovers):
        janus.graph.remove_document(tenant, doc_id)
        actions.graph_documents_removed += 1
    for part in _batches(targets.stale_points, 1000):
        janus.vectors.delete_ids(tenant, part)
        actions.stale_points_deleted += len(part)
    actions.versions_reindexed = _reproject(
        janus, tenant, targets.index_doc_ids, ("embed", "index")
    )
    rebuild = sorted(targets.rebuild_entities)
    for part in _batches(rebuild, _BATCH):
        janus.graph.delete_entities(tenant, part)
    actions.entities_rebuilt = len(rebuild)
    graph_docs = _graph_doc_ids(janus, report)
    actions.versions_regraphed = _reproject(janus, tenant, graph_docs, ("graph",))
    _fix_objects(janus, report, orphan_grace, actions)
    return actions


def _batches(items: Iterable[T], size: int) -> list[list[T]]:
    ordered = list(items)
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]


def _distinct(janus: Janus, query: Any) -> set[str]:
    with janus.ledger.session() as session:
        return set(session.scalars(query.distinct()))


def _graph_doc_ids(janus: Janus, report: TenantReport) -> set[str]:
    """The live doc_ids whose graph projection must be redone to put back what is missing."""
    tenant, targets = report.tenant, report.targets
    live = live_doc_ids(tenant)
    if targets.full_graph:
        return _distinct(
            janus,
            select(Mention.doc_id).where(Mention.tenant_id == tenant, Mention.doc_id.in_(live)),
        )
    docs: set[str] = set()
    touched = set(targets.missing_entities) | targets.rebuild_entities
    for part in _batches(sorted(touched), _BATCH):
        docs |= _distinct(
            janus,
            select(Mention.doc_id).where(Mention.entity_id.in_(part), Mention.doc_id.in_(live)),
        )
        docs |= _distinct(
            janus,
            select(RelationSupport.doc_id)
            .join(Relation, Relation.id == RelationSupport.relation_id)
            .where(
                or_(Relation.source_entity_id.in_(part), Relation.target_entity_id.in_(part)),
                RelationSupport.doc_id.in_(live),
            ),
        )
    relations = sorted(set(targets.missing_relations) | set(targets.short_support))
    for part in _batches(relations, _BATCH):
        docs |= _distinct(
            janus,
            select(RelationSupport.doc_id).where(
                RelationSupport.relation_id.in_(part), RelationSupport.doc_id.in_(live)
            ),
        )
    return docs


def _reproject(janus: Janus, tenant: str, doc_ids: set[str], stages: tuple[str, ...]) -> int:
    """Send the ``done`` versions of ``doc_ids`` back through ``stages``; return how many.

    Every version carrying a doc_id is reopened, or ``Projector.run`` would
    see the doc_id done elsewhere and skip the work. One version per doc_id
    has its stages reset and runs first; the others then finish at once on
    the contributions it restored.
    """
    if not doc_ids:
        return 0
    versions: list[tuple[int, str]] = []
    for part in _batches(sorted(doc_ids), _BATCH):
        with janus.ledger.session() as session:
            versions += session.execute(
                select(DocumentVersion.id, DocumentVersion.doc_id)
                .where(
                    DocumentVersion.tenant_id == tenant,
                    DocumentVersion.doc_id.in_(part),
                    DocumentVersion.status == "done",
                )
                .order_by(DocumentVersion.id)
            )
    first: dict[str, int] = {}
    for version_id, doc_id in versions:
        first.setdefault(doc_id, version_id)
    leading = list(first.values())
    reset = set(leading)
    following = [version_id for version_id, _ in versions if version_id not in reset]
    documents = DocumentLedger(janus.ledger)
    documents.mark_stages(leading, stages, "pending")
    for ids in _batches([version_id for version_id, _ in versions], _BATCH):
        with janus.ledger.session() as session:
            session.execute(
                update(DocumentVersion).where(DocumentVersion.id.in_(ids)).values(status="running")
            )
    projector = Projector(janus, janus.embedder, documents, extractor=None)
    for group in (leading, following):
        for start in range(0, len(group), _RUN_BATCH):
            projector.run(group[start : start + _RUN_BATCH])
    return len(versions)


def _fix_objects(
    janus: Janus, report: TenantReport, orphan_grace: timedelta, actions: RepairActions
) -> None:
    tenant, targets = report.tenant, report.targets
    documents = DocumentLedger(janus.ledger)
    now = datetime.now(UTC)
    for key, created in sorted(targets.orphan_objects.items()):
        if now - created < orphan_grace:
            actions.orphans_kept_recent += 1
        elif not documents.object_in_use(key) and janus.objects.delete(key):
            actions.orphans_deleted += 1
    for key in targets.missing_objects:
        sources = _distinct(
            janus,
            select(Document.source)
            .join(DocumentVersion, DocumentVersion.document_id == Document.id)
            .where(DocumentVersion.tenant_id == tenant, DocumentVersion.object_key == key),
        )
        if any(_restore(janus, tenant, key, Path(source)) for source in sorted(sources)):
            actions.objects_restored += 1
        else:
            actions.objects_lost.append(key)


def _restore(janus: Janus, tenant: str, key: str, path: Path) -> bool:
    """Put ``path`` back under ``key`` if it still holds exactly the bytes that key names."""
    try:
        with path.open("rb") as stream:
            digest = hashlib.file_digest(stream, "sha256").hexdigest()
            if f"{tenant}/{digest}" != key:
                return False
            stream.seek(0)
            janus.objects.put(stream, tenant=tenant, metadata={"source": path.name[:200]})
    except OSError:
        return False
    return True
