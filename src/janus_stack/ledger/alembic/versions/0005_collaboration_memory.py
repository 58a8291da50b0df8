"""collaboration memory

The semantic cache of agent steps (``agent_cache``), whether a step was a
cache hit or miss (``run_steps.cache``), and the ledger side of the agent
collaboration graph (``agent_graph``). The ORM models are in
``janus_stack.workflows.models``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 14:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_cache",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("embedding", sa.JSON(), nullable=False),
        sa.Column("output", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("step_key", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_cache")),
    )
    with op.batch_alter_table("agent_cache", schema=None) as batch_op:
        batch_op.create_index(
            "ix_agent_cache_lookup", ["tenant_id", "agent", "created_at"], unique=False
        )

    op.create_table(
        "agent_graph",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint(
            "tenant_id", "kind", "item_id", "run_id", name=op.f("pk_agent_graph")
        ),
    )
    op.add_column("run_steps", sa.Column("cache", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run_steps", schema=None) as batch_op:
        batch_op.drop_column("cache")
    op.drop_table("agent_graph")
    with op.batch_alter_table("agent_cache", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_cache_lookup")
    op.drop_table("agent_cache")
