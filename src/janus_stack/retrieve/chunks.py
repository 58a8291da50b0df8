"""The ledger side of every search: which chunks are live, and what to show for them.

Whatever a mode found, a hit is built from the ledger: the chunk must
belong to a ``done`` version of ``tenant`` (so a half-ingested, superseded
or deleted document never shows, even while a projection lags behind), and
the document's title, source and version come from there too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, and_, select

from janus_stack.errors import NotFoundError
from janus_stack.ids import check_tenant
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Chunk, Document, DocumentVersion, Tenant
from janus_stack.retrieve.filters import Filters
from janus_stack.retrieve.types import GraphPath, Hit

SNIPPET_CHARS = 240
_BATCH = 500
_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves"""
STOPWORDS = frozenset(_STOPWORDS.split())


@dataclass(frozen=True)
class ChunkRow:
    """A live chunk with the document that carries it."""

    chunk_id: str
    doc_id: str
    document_id: str
    title: str
    source: str
    sub_id: str
    version: int
    ordinal: int
    page: int | None
    heading_path: tuple[str, ...]
    text: str
    text_sha256: str

    def as_hit(
        self,
        terms: Sequence[str] = (),
        score: float = 0.0,
        scores: Mapping[str, float] | None = None,
        ranks: Mapping[str, int] | None = None,
        paths: tuple[GraphPath, ...] = (),
    ) -> Hit:
        """This chunk as a search hit: its citation, and a snippet around the first of ``terms``."""
        return Hit(
            chunk_id=self.chunk_id,
            doc_id=self.doc_id,
            document_id=self.document_id,
            title=self.title,
            source=self.source,
            sub_id=self.sub_id,
            version=self.version,
            ordinal=self.ordinal,
            page=self.page,
            heading_path=self.heading_path,
            text=self.text,
            snippet=snippet(self.text, terms),
            score=score,
            scores=dict(scores or {}),
            ranks=dict(ranks or {}),
            paths=paths,
        )


def check_known_tenant(ledger: Ledger, tenant: object) -> str:
    """``tenant`` if it is a valid name the ledger knows, else a clear error."""
    name = check_tenant(tenant)  # type: ignore[arg-type]  # checked at run time
    with ledger.session() as session:
        known = session.get(Tenant, name) is not None
    if not known:
        raise NotFoundError(
            f"search: tenant {name!r} does not exist",
            hint="`janus stats` lists the tenants; ingest documents into a tenant first",
        )
    return name


def live_version_exists(tenant: str, filters: Filters) -> Select[int]:
    """An EXISTS subquery: a ``done`` version of ``Chunk.doc_id`` passing ``filters``.

    Filters on ``Chunk`` columns are correlated, so this is meant for a
    ``WHERE`` clause of a query over ``Chunk``.
    """
    query = (
        select(DocumentVersion.id)
        .join(Document, Document.id == DocumentVersion.document_id)
        .where(
            DocumentVersion.tenant_id == tenant,
            DocumentVersion.doc_id == Chunk.doc_id,
            DocumentVersion.status == "done",
        )
    )
    condition = filters.sql_all()
    if condition is not None:
        query = query.where(condition)
    return query


def load_chunks(
    ledger: Ledger, tenant: str, chunk_ids: Sequence[str], filters: Filters
) -> dict[str, ChunkRow]:
    """The live chunks among ``chunk_ids`` that pass ``filters``, by chunk ID."""
    found: dict[str, ChunkRow] = {}
    wanted = list(dict.fromkeys(chunk_ids))
    condition = filters.sql_all()
    with ledger.session() as session:
        for start in range(0, len(wanted), _BATCH):
            query = (
                select(
                    Chunk.id,
                    Chunk.doc_id,
                    DocumentVersion.document_id,
                    Document.title,
                    Document.source,
                    Document.sub_id,
                    DocumentVersion.version,
                    Chunk.ordinal,
                    Chunk.page,
                    Chunk.heading_path,
                    Chunk.text,
                    Chunk.text_sha256,
                )
                .join(
                    DocumentVersion,
                    and_(
                        DocumentVersion.doc_id == Chunk.doc_id,
                        DocumentVersion.tenant_id == Chunk.tenant_id,
                        DocumentVersion.status == "done",
                    ),
                )
                .join(Document, Document.id == DocumentVersion.document_id)
                .where(Chunk.tenant_id == tenant, Chunk.id.in_(wanted[start : start + _BATCH]))
                .order_by(Chunk.id, Document.source, Document.sub_id)
            )
            if condition is not None:
                query = query.where(condition)
            for row in session.execute(query):
                if row[0] in found:
                    continue  # one doc_id under two sources: cite the first
                found[row[0]] = ChunkRow(
                    chunk_id=row[0],
                    doc_id=row[1],
                    document_id=row[2],
                    title=row[3],
                    source=row[4],
                    sub_id=row[5],
                    version=row[6],
                    ordinal=row[7],
                    page=row[8],
                    heading_path=tuple(str(h) for h in row[9] or ()),
                    text=row[10],
                    text_sha256=row[11],
                )
    return found


def query_terms(query: str) -> list[str]:
    """The words of ``query`` worth matching: lower-cased, stop words dropped.

    A query of stop words only keeps them all, so it still finds something.
    """
    words = [w.casefold() for w in _WORD.findall(query)]
    kept = [w for w in words if w not in STOPWORDS]
    return list(dict.fromkeys(kept or words))


def snippet(text: str, terms: Sequence[str], width: int = SNIPPET_CHARS) -> str:
    """A window of ``text`` around the first query term it holds (else its start)."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    lowered = flat.casefold()
    positions = [p for p in (_find_word(lowered, t) for t in terms) if p >= 0]
    first = min(positions) if positions else 0
    start = max(0, first - width // 3)
    if start:
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < first else start
    end = min(len(flat), start + width)
    if end < len(flat):
        space = flat.rfind(" ", start, end)
        end = space if space > start + width // 2 else end
    return ("…" if start else "") + flat[start:end] + ("…" if end < len(flat) else "")


def _find_word(lowered: str, term: str) -> int:
    match = re.search(rf"\b{re.escape(term)}", lowered)
    return match.start() if match else -1
