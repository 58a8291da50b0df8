"""mentions index by entity and chunk

Graph search ranks the chunks that mention a query's entities
(``retrieve/graph_ledger.py``): mentions of a few entities, grouped by chunk
and entity. With only the single-column index on ``entity_id`` every
mention row was read from the table for its chunk and tenant and grouped in
a temporary B-tree; this index answers the query by itself (covering: it
holds the tenant too): about a third of the time at 100k chunks
for an entity mentioned in a few thousand chunks. It also serves every
lookup by ``entity_id`` alone, so the single-column index goes: one index
less to maintain for every mention ingest writes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 19:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_mentions_entity_id_chunk_id", "mentions", ["entity_id", "chunk_id", "tenant_id"]
    )
    op.drop_index("ix_mentions_entity_id", table_name="mentions")


def downgrade() -> None:
    op.create_index("ix_mentions_entity_id", "mentions", ["entity_id"])
    op.drop_index("ix_mentions_entity_id_chunk_id", table_name="mentions")
