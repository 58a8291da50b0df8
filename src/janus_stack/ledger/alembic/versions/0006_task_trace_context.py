"""task trace context

A queued task remembers the trace and the request that enqueued it
(``tasks.trace_context``: W3C ``traceparent``/``tracestate`` and the
request ID), so the worker's spans, logs and events join the caller's.
Nullable: tasks queued before this revision, or outside any request,
carry none.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 16:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("trace_context", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("trace_context")
