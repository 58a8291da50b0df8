"""The relational ledger's connection: one engine, sessions, and schema upgrades.

SQLAlchemy switches SQLite ↔ PostgreSQL by URL, so the ledger is not a slot.
SQLite runs in WAL mode with foreign keys on and a busy timeout, which lets
readers proceed while one writer commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from janus_stack.errors import ClosedError, SlotUnavailableError, SlotURLError
from janus_stack.urls import SlotURL

ACCEPTED = ("sqlite://", "postgresql+psycopg://")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Ledger:
    """Owns the engine and hands out sessions; constructing it does no I/O."""

    def __init__(self, url: SlotURL) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        # What readers derive from the contents at some cost (the keyword index's
        # term bounds), shared by every connection; each entry keyed by its owner
        # and stamped with what invalidates it.
        self.derived: dict[str, Any] = {}

    @property
    def dialect(self) -> str:
        return make_url(self.url.resolved).get_backend_name()

    @property
    def embedded(self) -> bool:
        return self.dialect == "sqlite"

    def open(self) -> Ledger:
        if self._engine is not None:
            return self
        try:
            sa_url = make_url(self.url.resolved)
        except ArgumentError as exc:
            raise SlotURLError(
                f"relational: {self.url.redacted!r} is not a database URL; "
                f"accepted: {', '.join(ACCEPTED)}"
            ) from exc
        backend = sa_url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise SlotURLError(
                f"relational: unsupported database {backend!r} in {self.url.redacted!r}; "
                f"accepted: {', '.join(ACCEPTED)}"
            )
        if backend == "postgresql" and sa_url.drivername != "postgresql+psycopg":
            sa_url = sa_url.set(drivername="postgresql+psycopg")
        options: dict[str, Any] = {"pool_pre_ping": True}
        if backend == "sqlite" and sa_url.database not in (None, "", ":memory:"):
            Path(sa_url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
        if backend == "postgresql":
            options["connect_args"] = {"connect_timeout": 5}
        try:
            engine = create_engine(sa_url, **options)
        except NoSuchModuleError as exc:
            raise SlotURLError(
                f"relational: no driver for {self.url.redacted!r}; accepted: {', '.join(ACCEPTED)}"
            ) from exc
        if backend == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        try:
            with engine.connect():
                pass
        except Exception as exc:
            engine.dispose()
            raise SlotUnavailableError(
                f"relational: cannot connect to {self.url.redacted}: "
                f"{str(exc).strip().splitlines()[0]}",
                hint="check that the database server runs and the URL is right",
            ) from exc
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        return self

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise ClosedError("the ledger is not open", hint="call Ledger.open() first")
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        if self._sessions is None:
            raise ClosedError("the ledger is not open", hint="call Ledger.open() first")
        with self._sessions.begin() as session:
            yield session

    def refresh_statistics(self) -> None:
        """Let SQLite's planner see the tables as they are now (after bulk writes).

        Without statistics SQLite picks the low-selectivity ``status`` index for
        "is this version live" checks and scans every version per matching
        chunk: keyword search took 15 s per query at 100k chunks, 36 ms after.
        ``analysis_limit`` keeps ANALYZE to a sample, a few milliseconds even on
        large tables. PostgreSQL's autovacuum keeps its statistics itself.
        """
        if self.dialect != "sqlite":
            return
        with self.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA analysis_limit=1000")
            connection.exec_driver_sql("ANALYZE")
            connection.commit()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._sessions = None

    def __enter__(self) -> Ledger:
        return self.open()

    def __exit__(self, *_exc: object) -> None:
        self.close()
