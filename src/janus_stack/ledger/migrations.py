"""Schema upgrades for the ledger, run through Alembic on the ledger's own engine."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from janus_stack.errors import ConfigError
from janus_stack.ledger.database import Ledger

_HERE = Path(__file__).parent

# Schema objects the revisions create that no model describes: the keyword
# search index (revision 0003). Autogenerate and the schema comparison in the
# tests skip them, so they are never proposed for removal.
UNMODELLED_TABLES = frozenset(
    {
        "chunks_fts",
        "chunks_fts_keys",
        "chunks_fts_content",
        "chunks_fts_data",
        "chunks_fts_idx",
        "chunks_fts_docsize",
        "chunks_fts_config",
    }
)
UNMODELLED_COLUMNS = frozenset({("chunks", "search_vector")})
UNMODELLED_INDEXES = frozenset({"ix_chunks_search_vector", "ix_chunks_fts_keys_tenant_id"})


def include_name(
    name: str | None, type_: str, parent_names: MutableMapping[Any, str | None]
) -> bool:
    """Alembic ``include_name`` hook: leave the unmodelled objects out of comparisons."""
    if type_ == "table":
        return name not in UNMODELLED_TABLES
    if type_ == "column":
        return (parent_names.get("table_name"), name) not in UNMODELLED_COLUMNS
    if type_ == "index":
        return name not in UNMODELLED_INDEXES
    return True


def _config() -> Config:
    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE / "alembic"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the ledger has no migrations"
    return head


def current_revision(ledger: Ledger) -> str | None:
    with ledger.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(ledger: Ledger, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is already there."""
    config = _config()
    with ledger.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(ledger: Ledger, revision: str) -> None:
    config = _config()
    with ledger.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def is_current(ledger: Ledger) -> bool:
    return current_revision(ledger) == head_revision()


@contextmanager
def _upgrade_lock(ledger: Ledger) -> Iterator[None]:
    """One process at a time upgrades an embedded SQLite file.

    Two commands started together on a fresh JANUS_HOME (``janus worker`` and
    ``janus ingest``) would otherwise both create the tables, and the second
    fail with "table already exists".
    """
    database = make_url(ledger.url.resolved).database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{Path(database).expanduser()}.upgrade.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_current(ledger: Ledger) -> None:
    """Upgrade the embedded SQLite ledger on first use; require it of server databases.

    A server database is shared by many processes and usually has an
    operator who decides when its schema changes, so Janus never alters it
    behind their back.
    """
    if is_current(ledger):
        return
    if ledger.embedded:
        with _upgrade_lock(ledger):
            if not is_current(ledger):  # another process may have upgraded meanwhile
                upgrade(ledger)
        return
    raise ConfigError(
        f"relational: the database at {ledger.url.redacted} is at schema revision "
        f"{current_revision(ledger) or 'none'}, Janus needs {head_revision()}",
        hint="run `janus db upgrade`",
    )
