"""Schema upgrades for the ledger, run through Alembic on the ledger's own engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from janus_stack.errors import ConfigError
from janus_stack.ledger.database import Ledger

_HERE = Path(__file__).parent


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


def ensure_current(ledger: Ledger) -> None:
    """Upgrade the embedded SQLite ledger on first use; require it of server databases.

    A server database is shared by many processes and usually has an
    operator who decides when its schema changes, so Janus never alters it
    behind their back.
    """
    if is_current(ledger):
        return
    if ledger.embedded:
        upgrade(ledger)
        return
    raise ConfigError(
        f"relational: the database at {ledger.url.redacted} is at schema revision "
        f"{current_revision(ledger) or 'none'}, Janus needs {head_revision()}",
        hint="run `janus db upgrade`",
    )
