"""what the running attempt of a step has spent so far

A step's usage used to reach the ledger only when the step ended, so the
model calls of an attempt killed by SIGKILL were paid for and never
counted. ``run_steps.attempt_*`` holds the running attempt's usage,
rewritten after every model call; the step's end moves it into the
step's and the run's totals, and when the process died before that, the
start of the run's next segment does (event ``workflow.usage.recovered``).
The ORM model is ``janus_stack.workflows.models.RunStep``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 02:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COLUMNS = (
    ("attempt_prompt_tokens", sa.Integer(), "0"),
    ("attempt_completion_tokens", sa.Integer(), "0"),
    ("attempt_cost", sa.Float(), "0"),
)


def upgrade() -> None:
    with op.batch_alter_table("run_steps", schema=None) as batch_op:
        for name, type_, default in COLUMNS:
            batch_op.add_column(
                sa.Column(name, type_, nullable=False, server_default=sa.text(default))
            )


def downgrade() -> None:
    with op.batch_alter_table("run_steps", schema=None) as batch_op:
        for name, _type, _default in reversed(COLUMNS):
            batch_op.drop_column(name)
