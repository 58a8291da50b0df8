"""chunks index by tenant and text hash

Before embedding a batch, ingest asks which of its chunk texts already have
a vector of the model in the tenant (``IngestProgress.vectors_by_text``), so
that no text is embedded twice. The chunks table had an index on
``tenant_id`` only, so every batch read all of the tenant's chunks: the
lookup grew with the memory, about quadratic over a large ingest. This
index answers it by its keys. It also serves every lookup by ``tenant_id``
alone, so the single-column index goes: one index less to maintain for
every chunk ingest writes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 22:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_chunks_tenant_id_text_sha256", "chunks", ["tenant_id", "text_sha256"])
    op.drop_index("ix_chunks_tenant_id", table_name="chunks")


def downgrade() -> None:
    op.create_index("ix_chunks_tenant_id", "chunks", ["tenant_id"])
    op.drop_index("ix_chunks_tenant_id_text_sha256", table_name="chunks")
