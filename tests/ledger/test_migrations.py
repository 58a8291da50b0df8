"""The Alembic revisions, on SQLite and PostgreSQL.

The schema they build must equal ``Base.metadata``: a model change without a
revision fails here, not in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, func, insert, inspect, select, text
from sqlalchemy import exc as sa_exc

from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Base, Event
from janus_stack.urls import SlotURL
from janus_stack.workflows import models as _workflow_models  # noqa: F401 - registers tables


@pytest.fixture
def empty(ledger_url: str) -> Iterator[Ledger]:
    """An open ledger on a database no migration has touched."""
    with Ledger(SlotURL.parse("relational", ledger_url)) as opened:
        yield opened


def schema_diff(ledger: Ledger, metadata: MetaData = Base.metadata) -> list[Any]:
    with ledger.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "include_name": migrations.include_name},
        )
        return list(compare_metadata(context, metadata))


def tables(ledger: Ledger) -> set[str]:
    found = set(inspect(ledger.engine).get_table_names())
    return found - {"alembic_version"} - migrations.UNMODELLED_TABLES


def update_refused(ledger: Ledger) -> bool:
    """Whether the database itself refuses an UPDATE of a row of ``events``.

    Row triggers do not fire on an empty table, so a row is put there first.
    """
    with ledger.engine.begin() as connection:
        if connection.execute(select(func.count()).select_from(Event)).scalar_one() == 0:
            connection.execute(
                insert(Event).values(
                    seq=1,
                    time=datetime.now(UTC),
                    tenant_id="acme",
                    actor="a",
                    type="t",
                    subject="s",
                    payload={},
                    prev_hash="0" * 64,
                    hash="1" * 64,
                )
            )
    try:
        with ledger.engine.begin() as connection:
            connection.execute(text("UPDATE events SET actor = actor"))
    except sa_exc.DBAPIError as exc:
        assert "append-only" in str(exc)
        return True
    return False


def test_upgrade_from_empty_is_idempotent_and_matches_the_models(empty: Ledger) -> None:
    assert migrations.current_revision(empty) is None
    assert not migrations.is_current(empty)
    assert tables(empty) == set()

    migrations.upgrade(empty)
    assert migrations.current_revision(empty) == migrations.head_revision() == "0010"
    assert migrations.is_current(empty)
    assert tables(empty) == set(Base.metadata.tables)
    assert schema_diff(empty) == []

    migrations.upgrade(empty)
    assert migrations.current_revision(empty) == migrations.head_revision()
    assert schema_diff(empty) == []

    # The comparison is not vacuous: a model change without a revision shows up.
    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    assert schema_diff(empty, drifted) == []
    drifted.tables["events"].append_column(Column("extra", Integer, nullable=True))
    diff = schema_diff(empty, drifted)
    assert [entry[0] for entry in diff] == ["add_column"]
    assert diff[0][2:4] == ("events", drifted.tables["events"].c.extra)


def test_downgrade_to_base_and_back_and_the_append_only_triggers(empty: Ledger) -> None:
    migrations.upgrade(empty, "0001")
    assert not update_refused(empty)
    migrations.upgrade(empty)
    assert update_refused(empty)
    migrations.downgrade(empty, "0001")
    assert migrations.current_revision(empty) == "0001"
    assert not update_refused(empty)

    migrations.upgrade(empty)
    migrations.downgrade(empty, "base")
    assert migrations.current_revision(empty) is None
    assert tables(empty) == set()
    if empty.dialect == "postgresql":
        with empty.engine.connect() as connection:
            leftover = connection.execute(
                text("SELECT count(*) FROM pg_proc WHERE proname = 'janus_events_append_only'")
            ).scalar_one()
        assert leftover == 0

    migrations.upgrade(empty)
    assert migrations.is_current(empty)
    assert schema_diff(empty) == []
    assert update_refused(empty)
