"""Shared fixtures: real services, each test run in its own database / prefix.

A missing service is a skip with the reason locally and a failure in CI
(``CI=true``), so a broken CI machine can never pass by skipping.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from janus_stack.config import SLOTS
from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.logs import reset_logging
from janus_stack.urls import SlotURL

PG_ADMIN = os.environ.get("JANUS_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("JANUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("JANUS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
RUN_ID = uuid.uuid4().hex[:10]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_missing(reason: str) -> None:
    """Skip locally, fail in CI: a CI run must exercise every server backend."""
    if in_ci():
        pytest.fail(f"required service unavailable in CI: {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(autouse=True)
def _default_logging() -> Iterator[None]:
    """Undo a command's process-wide logging set-up (level, scrubber) after each test."""
    yield
    reset_logging()


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point JANUS_HOME at a fresh folder so no test touches the user's data."""
    home = tmp_path_factory.mktemp("janus-home")
    monkeypatch.setenv("JANUS_HOME", str(home))
    for slot in SLOTS:
        monkeypatch.delenv(f"JANUS_{slot.upper()}_URL", raising=False)
    monkeypatch.chdir(home)
    return home


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[str]:
    if not port_open("127.0.0.1", 5432):
        service_missing("PostgreSQL is not listening on 127.0.0.1:5432")
    yield PG_ADMIN


@contextmanager
def scratch_database(pg_admin: str, name: str) -> Iterator[str]:
    """Create the PostgreSQL database ``name``; yield its SQLAlchemy URL; drop it even if in use."""
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield (
            pg_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            + "/"
            + name
        )
    finally:
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def migrated_database(pg_admin: str, name: str) -> Iterator[str]:
    """:func:`scratch_database` with the ledger's schema, for fixtures shared by a module."""
    with scratch_database(pg_admin, name) as url:
        with Ledger(SlotURL.parse("relational", url)) as ledger:
            migrations.upgrade(ledger)
        yield url


@pytest.fixture
def pg_database(pg_admin: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    with scratch_database(pg_admin, f"janus_test_{RUN_ID}_{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A relational URL for each ledger backend (SQLite file, PostgreSQL database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    """An open, migrated ledger on each backend."""
    with Ledger(SlotURL.parse("relational", ledger_url)) as opened:
        migrations.upgrade(opened)
        yield opened


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not port_open("127.0.0.1", 6379):
        service_missing("Redis is not listening on 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture(scope="session")
def amqp_url() -> str:
    if not port_open("127.0.0.1", 5672):
        service_missing("RabbitMQ is not listening on 127.0.0.1:5672")
    return AMQP_URL
