"""events append-only

The database itself refuses UPDATE, DELETE and TRUNCATE of ``events``, so a
bug or a stolen application credential cannot rewrite history; only someone
able to disable triggers (a DBA) can, and ``EventLog.verify`` catches that.
Triggers rather than REVOKE, because the application usually connects as the
table's owner, whom REVOKE does not bind.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION janus_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $body$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'insufficient_privilege',
        MESSAGE = 'events is append-only: ' || TG_OP || ' refused',
        HINT = 'the event log may only grow; append a correcting event instead';
END
$body$
"""

_SQLITE_TRIGGERS = {
    "events_no_update": "UPDATE",
    "events_no_delete": "DELETE",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION janus_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
            "FOR EACH STATEMENT EXECUTE FUNCTION janus_events_append_only()"
        )
    elif dialect == "sqlite":
        for name, operation in _SQLITE_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {operation} ON events BEGIN "
                f"SELECT RAISE(ABORT, 'events is append-only: {operation} refused'); END"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_no_truncate ON events")
        op.execute("DROP TRIGGER IF EXISTS events_no_update_delete ON events")
        op.execute("DROP FUNCTION IF EXISTS janus_events_append_only()")
    elif dialect == "sqlite":
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
