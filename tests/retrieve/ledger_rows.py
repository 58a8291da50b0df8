"""Ledger rows written straight into a scratch ledger, for tests of one retrieval query.

The tests that use this compare a query against a reference over the same
rows, so they need documents, versions and chunks without the ingest
pipeline (and its embedder) in the way.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Chunk, Document, DocumentVersion, Tenant


def add_document(
    ledger: Ledger,
    tenant: str,
    name: str,
    texts: Sequence[str],
    *,
    status: str = "done",
    source: str | None = None,
) -> list[str]:
    """One document of ``tenant`` with one version in ``status`` whose chunks are ``texts``.

    Returns the chunk IDs in order; they are derived from tenant, name and
    ordinal, so a test can rebuild them.
    """
    doc_id = hashlib.sha256(f"{tenant}:{name}".encode()).hexdigest()
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{name}/{i}")) for i in range(len(texts))]
    with ledger.session() as session:
        if session.get(Tenant, tenant) is None:
            session.add(Tenant(id=tenant, name=tenant))
            session.flush()
        document = Document(
            id=str(uuid.uuid4()), tenant_id=tenant, source=source or f"/{name}", title=name
        )
        session.add(document)
        session.flush()
        version = DocumentVersion(
            document_id=document.id,
            tenant_id=tenant,
            doc_id=doc_id,
            version=1,
            object_key="",
            size=1,
            status=status,
        )
        session.add(version)
        session.flush()
        for ordinal, (chunk_id, body) in enumerate(zip(ids, texts, strict=True)):
            session.add(
                Chunk(
                    id=chunk_id,
                    tenant_id=tenant,
                    version_id=version.id,
                    doc_id=doc_id,
                    ordinal=ordinal,
                    text=body,
                    text_sha256=hashlib.sha256(body.encode()).hexdigest(),
                    heading_path=[],
                    char_start=0,
                    char_end=len(body),
                )
            )
    return ids
