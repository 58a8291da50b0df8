"""``janus verify``: compare the ledger with its projections, store by store.

The ledger is the source of truth (ARCHITECTURE.md §1.2); the object store,
the vector index and the graph must hold exactly what its *live* versions
(status ``done``) contributed. Each check walks the ledger with keyset
pagination or a store page by page, so memory is bounded by the batch size
plus the disagreements found; the latter are kept in full (``targets``)
because ``janus repair`` acts on them.

Versions still ``pending``/``running`` are unfinished work: what they have
already written is tolerated (neither missing nor extra), but the report is
not ``ok`` while any exist, because the stores do not agree yet. Failed
versions are listed for the operator and are not an inconsistency.

The graph slot offers no way to enumerate its items, so graph entities are
checked per ID from the ledger side, relations per ID (with their
supporting chunks) through ``relations_between``, and mentions only by count;
an extra graph item that no ledger row names is reported as a count.
The agent collaboration graph that finished runs add (agent and run
entities, their relations; ``workflows.collaboration``) is recorded in the
ledger's ``agent_graph`` table and counted with the rest.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, TypeAlias

from sqlalchemy import Select, func, or_, select

from janus_stack.context import Janus
from janus_stack.ids import check_tenant
from janus_stack.ledger.models import (
    Chunk,
    Document,
    DocumentVersion,
    Entity,
    Mention,
    Relation,
    RelationSupport,
    Tenant,
)
from janus_stack.ops.verify_report import (
    SAMPLE,
    CountCheck,
    Finding,
    TenantReport,
    VerifyReport,
)
from janus_stack.retrieve import fulltext
from janus_stack.slots.vectors import VectorFilter
from janus_stack.workflows import collaboration

BATCH = 1000
GRAPH_BATCH = 400  # entities or relations per graph read
UNFINISHED = ("pending", "running")
Query: TypeAlias = "Select[*tuple[Any, ...]]"
KNOWN = ("done", *UNFINISHED)


def verify(janus: Janus, tenant: str | None = None, *, sample: int = SAMPLE) -> VerifyReport:
    """Check one tenant (or every tenant the ledger knows) against every store."""
    if tenant is not None:
        tenants = [check_tenant(tenant)]
    else:
        with janus.ledger.session() as session:
            tenants = list(session.scalars(select(Tenant.id).order_by(Tenant.id)))
    report = VerifyReport()
    structure = fulltext.structure_problems(janus.ledger) if tenants else []
    for name in tenants:
        found = TenantReport(name)
        for finding in _findings(found):
            finding.limit = sample
        _check_versions(janus, found)
        _check_objects(janus, found)
        _check_vectors(janus, found)
        _check_keyword(janus, found, structure)
        _check_graph(janus, found)
        report.tenants.append(found)
    return report


def _findings(report: TenantReport) -> list[Finding]:
    parts: list[Any] = [report, report.objects, report.vectors, report.keyword, report.graph]
    return [v for part in parts for v in vars(part).values() if isinstance(v, Finding)]


# -- ledger helpers -----------------------------------------------------------


def live_doc_ids(tenant: str, statuses: tuple[str, ...] = ("done",)) -> Select[str]:
    """The doc_ids of ``tenant`` with a version in ``statuses`` (a subquery)."""
    return select(DocumentVersion.doc_id).where(
        DocumentVersion.tenant_id == tenant, DocumentVersion.status.in_(statuses)
    )


def keyset(janus: Janus, query: Query, column: Any, batch: int = BATCH) -> Iterator[list[Any]]:
    """Rows of ``query`` in pages ordered by ``column`` (the first selected column)."""
    last: Any = None
    while True:
        page = query if last is None else query.where(column > last)
        with janus.ledger.session() as session:
            rows = list(session.execute(page.order_by(column).limit(batch)))
        if rows:
            yield rows
        if len(rows) < batch:
            return
        last = rows[-1][0]


def doc_states(janus: Janus, tenant: str, doc_ids: set[str]) -> dict[str, str]:
    """doc_id → 'live', 'unfinished' or absent (no version carries it any more)."""
    states: dict[str, str] = {}
    if not doc_ids:
        return states
    query = select(DocumentVersion.doc_id, DocumentVersion.status).where(
        DocumentVersion.tenant_id == tenant,
        DocumentVersion.doc_id.in_(sorted(doc_ids)),
        DocumentVersion.status.in_(KNOWN),
    )
    with janus.ledger.session() as session:
        for doc_id, status in session.execute(query.distinct()):
            if status == "done" or doc_id not in states:
                states[doc_id] = "live" if status == "done" else "unfinished"
    return states


def _count(janus: Janus, query: Query) -> int:
    with janus.ledger.session() as session:
        return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


# -- the checks -----------------------------------------------------------------


def _check_versions(janus: Janus, report: TenantReport) -> None:
    tenant = report.tenant
    base = select(
        DocumentVersion.id,
        DocumentVersion.document_id,
        DocumentVersion.doc_id,
        DocumentVersion.status,
        DocumentVersion.error,
        Document.source,
    ).join(Document, Document.id == DocumentVersion.document_id)
    current = func.coalesce(Document.current_version_id, 0)
    failed = base.where(  # failures no later success replaced, of documents not deleted
        DocumentVersion.tenant_id == tenant,
        DocumentVersion.status == "failed",
        Document.status != "deleted",
        DocumentVersion.id > current,
    )
    unfinished = base.where(
        DocumentVersion.tenant_id == tenant, DocumentVersion.status.in_(UNFINISHED)
    )
    for finding, query in ((report.unfinished, unfinished), (report.failed, failed)):
        for rows in keyset(janus, query, DocumentVersion.id):
            for vid, document_id, doc_id, status, error, source in rows:
                item = {"version_id": vid, "document_id": document_id, "doc_id": doc_id}
                item.update(status=status, source=source, error=error)
                finding.add(item)
    leftovers = (
        select(Chunk.doc_id)
        .distinct()
        .where(Chunk.tenant_id == tenant)
        .where(Chunk.doc_id.not_in(live_doc_ids(tenant, KNOWN)))
    )
    for rows in keyset(janus, leftovers, Chunk.doc_id):
        for (doc_id,) in rows:
            report.leftovers.add(doc_id)
            report.targets.leftover_doc_ids.append(doc_id)


def _check_objects(janus: Janus, report: TenantReport) -> None:
    """Walk the keys in buckets of sha256 prefixes, so each bucket's key set stays small."""
    tenant, check, targets = report.tenant, report.objects, report.targets
    conditions = (
        DocumentVersion.tenant_id == tenant,
        DocumentVersion.status.in_(KNOWN),
        DocumentVersion.object_key != "",
    )
    referenced = select(DocumentVersion.object_key, DocumentVersion.status).where(*conditions)
    total = _count(janus, select(DocumentVersion.object_key).distinct().where(*conditions))
    width = 0 if total <= 50 * BATCH else 1 if total <= 800 * BATCH else 2
    for prefix in map("".join, itertools.product("0123456789abcdef", repeat=width)):
        scoped = referenced.where(
            DocumentVersion.object_key.startswith(f"{tenant}/{prefix}", autoescape=True)
        )
        with janus.ledger.session() as session:
            rows = list(session.execute(scoped.distinct()))
        live = {key for key, status in rows if status == "done"}
        known = {key for key, _status in rows}
        listed: set[str] = set()
        for info in janus.objects.list(prefix, tenant=tenant):
            listed.add(info.key)
            if info.key not in known:
                check.orphans.add(info.key)
                targets.orphan_objects[info.key] = info.created_at
        check.expected += len(live)
        check.found += len(listed)
        for key in sorted(live - listed):
            check.missing.add(key)
            targets.missing_objects.append(key)


def _check_vectors(janus: Janus, report: TenantReport) -> None:
    tenant, check, targets = report.tenant, report.vectors, report.targets
    check.model = model = janus.embedder.model
    expected = select(Chunk.id, Chunk.doc_id).where(
        Chunk.tenant_id == tenant, Chunk.doc_id.in_(live_doc_ids(tenant))
    )
    for rows in keyset(janus, expected, Chunk.id):
        present = {hit.id: hit for hit in janus.vectors.retrieve(tenant, [r[0] for r in rows])}
        check.expected += len(rows)
        for chunk_id, doc_id in rows:
            hit = present.get(chunk_id)
            if hit is None:
                check.missing.add(chunk_id)
                targets.index_doc_ids.add(doc_id)
            elif hit.payload.get("model") != model:
                check.stale.add(chunk_id)
                targets.stale_points.append(chunk_id)
                targets.index_doc_ids.add(doc_id)
    page: list[tuple[str, Any]] = []
    for hit in janus.vectors.iter_points(VectorFilter(tenant=tenant), batch=BATCH):
        check.found += 1
        page.append((hit.id, hit.payload.get("doc_id")))
        if len(page) == BATCH:
            _classify_points(janus, report, page)
            page = []
    _classify_points(janus, report, page)


def _classify_points(janus: Janus, report: TenantReport, page: list[tuple[str, Any]]) -> None:
    """Points whose chunk is not in the ledger, or whose doc_id is no longer live, are extra.

    The payload's doc_id of an extra point names graph contributions that
    may be left over too, unless a live version still carries that doc_id.
    """
    if not page:
        return
    with janus.ledger.session() as session:
        query = select(Chunk.id, Chunk.doc_id).where(
            Chunk.tenant_id == report.tenant, Chunk.id.in_([p[0] for p in page])
        )
        owners = {chunk_id: doc_id for chunk_id, doc_id in session.execute(query)}
    claimed = {d for _, d in page if isinstance(d, str) and d}
    states = doc_states(janus, report.tenant, set(owners.values()) | claimed)
    for point_id, payload_doc in page:
        if states.get(owners.get(point_id, "")) is not None:
            continue  # the chunk of a live or unfinished doc_id
        report.vectors.extra.add(point_id)
        report.targets.extra_points.append(point_id)
        if payload_doc in claimed and payload_doc not in states:
            report.targets.extra_doc_ids.add(payload_doc)


def _check_keyword(janus: Janus, report: TenantReport, structure: list[str]) -> None:
    """Every chunk of a live version is in the keyword index; no entry outlives its chunk.

    ``structure`` (checked once per run) names what is missing or corrupt in
    the index itself; the index is shared by all tenants, so it is reported
    under each.
    """
    tenant, check = report.tenant, report.keyword
    ledger = janus.ledger
    check.engine = fulltext.engine_name(ledger)
    for problem in structure:
        check.broken.add(problem)
    if any("missing" in problem for problem in structure):
        return  # the membership queries need the index's tables
    live = select(Chunk.id).where(Chunk.tenant_id == tenant, Chunk.doc_id.in_(live_doc_ids(tenant)))
    check.expected = _count(janus, live)
    missing = live.where(Chunk.id.not_in(fulltext.indexed_chunks(ledger)))
    for rows in keyset(janus, missing, Chunk.id):
        for (chunk_id,) in rows:
            check.missing.add(chunk_id)
    orphans = fulltext.orphan_entries(ledger, tenant)
    if orphans is not None:
        for rows in keyset(janus, orphans, fulltext.keys.c.chunk_id):
            for (chunk_id,) in rows:
                check.extra.add(chunk_id)
    check.found = check.expected - check.missing.count + check.extra.count


def _graph_scopes(tenant: str, statuses: tuple[str, ...]) -> dict[str, Query]:
    """Ledger queries of what the graph should hold for doc_ids with versions in ``statuses``."""
    docs = live_doc_ids(tenant, statuses)
    supported = select(RelationSupport.relation_id).where(RelationSupport.doc_id.in_(docs))
    mentions = select(Mention.chunk_id, Mention.entity_id).where(
        Mention.tenant_id == tenant, Mention.doc_id.in_(docs)
    )
    return {
        "entities": select(Entity.id).where(
            Entity.tenant_id == tenant,
            or_(
                Entity.id.in_(select(Mention.entity_id).where(Mention.doc_id.in_(docs))),
                Entity.id.in_(select(Relation.source_entity_id).where(Relation.id.in_(supported))),
                Entity.id.in_(select(Relation.target_entity_id).where(Relation.id.in_(supported))),
            ),
        ),
        "relations": select(
            Relation.id, Relation.source_entity_id, Relation.target_entity_id
        ).where(Relation.tenant_id == tenant, Relation.id.in_(supported)),
        "mentions": mentions.distinct(),
        "chunks": select(Mention.chunk_id)
        .distinct()
        .where(Mention.tenant_id == tenant, Mention.doc_id.in_(docs)),
    }


def _check_graph(janus: Janus, report: TenantReport) -> None:
    tenant, check, targets = report.tenant, report.graph, report.targets
    live, upper = _graph_scopes(tenant, ("done",)), _graph_scopes(tenant, KNOWN)
    stored = janus.graph.counts(tenant)
    runs = collaboration.ledger_counts(janus.ledger, tenant)  # agent and run nodes, their edges
    for name, query in live.items():
        extra = runs.get(name, 0)
        check.counts[name] = CountCheck(
            _count(janus, query) + extra, _count(janus, upper[name]) + extra, getattr(stored, name)
        )
    for rows in keyset(janus, live["entities"], Entity.id, GRAPH_BATCH):
        wanted = [row[0] for row in rows]
        present = {e.id for e in janus.graph.get_entities(tenant, wanted)}
        for entity_id in wanted:
            if entity_id not in present:
                check.missing_entities.add(entity_id)
                targets.missing_entities.append(entity_id)
    for rows in keyset(janus, live["relations"], Relation.id, GRAPH_BATCH):
        _check_relations(janus, report, [(r[0], r[1], r[2]) for r in rows])
    short = any(c.store < c.ledger for c in check.counts.values())
    targets.full_graph = short and not check.located


def _check_relations(
    janus: Janus, report: TenantReport, relations: list[tuple[str, str, str]]
) -> None:
    """Compare the chunks supporting each relation in the ledger and in the graph."""
    tenant, check, targets = report.tenant, report.graph, report.targets
    with janus.ledger.session() as session:
        supports = list(
            session.execute(
                select(
                    RelationSupport.relation_id, RelationSupport.chunk_id, RelationSupport.doc_id
                ).where(RelationSupport.relation_id.in_([r[0] for r in relations]))
            )
        )
    states = doc_states(janus, tenant, {doc_id for _, _, doc_id in supports})
    wanted: dict[str, set[str]] = {}
    allowed: dict[str, set[str]] = {}
    for relation_id, chunk_id, doc_id in supports:
        state = states.get(doc_id)
        if state == "live":
            wanted.setdefault(relation_id, set()).add(chunk_id)
        if state is not None:
            allowed.setdefault(relation_id, set()).add(chunk_id)
    pairs = [(source, target) for _, source, target in relations]
    stored = {r.id: set(r.chunk_ids) for r in janus.graph.relations_between(tenant, pairs)}
    for relation_id, source, target in relations:
        chunks = stored.get(relation_id)
        if chunks is None:
            check.missing_relations.add(relation_id)
            targets.missing_relations.append(relation_id)
            continue
        lacking = wanted.get(relation_id, set()) - chunks
        surplus = chunks - allowed.get(relation_id, set())
        if lacking or surplus:
            check.support_mismatch.add(
                {"relation_id": relation_id, "missing": sorted(lacking), "extra": sorted(surplus)}
            )
            if lacking:
                targets.short_support.append(relation_id)
            if surplus:
                targets.rebuild_entities.update((source, target))
