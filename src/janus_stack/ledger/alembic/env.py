"""Alembic environment: runs on the connection the ledger hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from janus_stack.ledger.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through janus_stack.ledger.migrations, not the alembic CLI")
_run(connection)
