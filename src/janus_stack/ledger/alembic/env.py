"""Alembic environment: runs on the connection the ledger hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from janus_stack.ledger.migrations import include_name
from janus_stack.ledger.models import Base
from janus_stack.workflows import models as _workflow_models  # noqa: F401 - registers the tables


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through janus_stack.ledger.migrations, not the alembic CLI")
_run(connection)
