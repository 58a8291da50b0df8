"""feedback consumed by agent steps, usage of called agents

A note left with ``janus runs feedback`` while no human step waits goes to
the next agent step of the run; ``run_feedback.consumed_by`` names that
step (``consumed_at`` when it took it), written in the transaction that
starts the step, so a resumed step gets the same notes and no note reaches
two steps. ``run_agent_calls`` holds the own usage of every agent reached
through ``agents.call``, so per-agent accounting charges the called agent.
The ORM models are in ``janus_stack.workflows.models``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 22:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("run_feedback", sa.Column("consumed_by", sa.String(length=300), nullable=True))
    op.add_column(
        "run_feedback", sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "run_agent_calls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("step_key", sa.String(length=300), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["workflow_runs.id"], name=op.f("fk_run_agent_calls_run_id_workflow_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_agent_calls")),
    )
    with op.batch_alter_table("run_agent_calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_agent_calls_agent"), ["agent"], unique=False)
        batch_op.create_index(batch_op.f("ix_run_agent_calls_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("run_agent_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_agent_calls_run_id"))
        batch_op.drop_index(batch_op.f("ix_run_agent_calls_agent"))
    op.drop_table("run_agent_calls")
    with op.batch_alter_table("run_feedback", schema=None) as batch_op:
        batch_op.drop_column("consumed_at")
        batch_op.drop_column("consumed_by")
