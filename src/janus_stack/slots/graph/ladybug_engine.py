"""The plumbing under the embedded graph: opening a ladybug database and running statements.

``LadybugGraph`` builds the slot's reads and writes on the few methods here
(``_q`` for one statement, ``_apply`` for a write of several, ``_copy`` for a
bulk load from a scratch CSV file), so the rules for locking, transactions
and the engine's errors are written once, apart from the Cypher they run.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path as FsPath
from typing import Any

import ladybug as lb

from janus_stack.errors import SlotUnavailableError, SlotURLError
from janus_stack.slots.graph import GraphStore
from janus_stack.urls import SlotURL

DB_FILE = "graph.lbug"
BULK_THRESHOLD = 2_000
BUFFER_POOL_MB = 256
_SCHEMA = (
    "CREATE NODE TABLE IF NOT EXISTS Entity(key STRING PRIMARY KEY, id STRING, tenant STRING, "
    "name STRING, type STRING, properties STRING)",
    "CREATE NODE TABLE IF NOT EXISTS Chunk(key STRING PRIMARY KEY, id STRING, tenant STRING, "
    "doc_id STRING)",
    "CREATE REL TABLE IF NOT EXISTS MENTIONS(FROM Chunk TO Entity)",
    "CREATE REL TABLE IF NOT EXISTS RELATED(FROM Entity TO Entity, id STRING, tenant STRING, "
    "type STRING, chunk_ids STRING[], properties STRING)",
)
Step = Callable[[], object]


class LadybugEngine(GraphStore):
    """A graph slot on one ladybug database: its connection, lock and scratch folder."""

    def __init__(self, url: SlotURL) -> None:
        super().__init__(url)
        # Rows from which a write uses COPY: measured crossover with UNWIND ... CREATE.
        threshold = url.query.get("bulk_threshold", str(BULK_THRESHOLD))
        if not threshold.isdigit() or int(threshold) < 1:
            raise SlotURLError(
                f"graph slot: bulk_threshold in {url.redacted!r} must be a positive integer"
            )
        self.bulk_threshold = int(threshold)
        # ladybug's default buffer pool is most of the machine's RAM; Janus shares
        # one small machine with the embedder and spaCy, so it asks for less.
        pool = url.query.get("buffer_pool_mb", str(BUFFER_POOL_MB))
        if not pool.isdigit() or int(pool) < 64:
            raise SlotURLError(
                f"graph slot: buffer_pool_mb in {url.redacted!r} must be an integer >= 64"
            )
        self.buffer_pool_bytes = int(pool) * 1024 * 1024
        self.path: FsPath | None = None
        self._lock = threading.RLock()
        self._db: Any = None
        self._conn: Any = None
        self._scratch: FsPath | None = None

    def _open(self) -> None:
        path = self.url.path
        if path.is_dir():
            path = path / DB_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = lb.Database(str(path), buffer_pool_size=self.buffer_pool_bytes)
        except RuntimeError as exc:
            if "lock" not in str(exc).lower():
                raise
            raise SlotUnavailableError(
                f"graph slot: the ladybug database {path} is in use by another process",
                hint="one process may write an embedded graph at a time: stop the other "
                "`janus` process or let it serve this one",
            ) from exc
        conn = lb.Connection(db)
        for statement in _SCHEMA:
            conn.execute(statement)
        self.path, self._db, self._conn = path, db, conn
        self._scratch = FsPath(tempfile.mkdtemp(prefix="janus-graph-"))

    def _close(self) -> None:
        with self._lock:
            conn, db, self._conn, self._db = self._conn, self._db, None, None
            if conn is not None:
                conn.close()
            if db is not None:
                db.close()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None

    # -- plumbing -------------------------------------------------------------

    def _q(self, query: str, params: Mapping[str, Any] | None = None) -> list[list[Any]]:
        with self._lock:
            self._require_open()
            try:
                result = self._conn.execute(query, dict(params or {}))
            except RuntimeError as exc:  # the engine's one error type: out of memory, I/O …
                raise SlotUnavailableError(
                    f"graph slot (ladybug at {self.url.redacted}): {exc}",
                    hint="raise ?buffer_pool_mb= in the graph URL if the buffer pool is full",
                ) from exc
            try:
                rows: list[list[Any]] = result.get_all()
            finally:
                result.close()
            return rows

    def _apply(self, steps: list[Step]) -> None:
        """Run write statements; several run as one transaction, one on its own.

        One statement is atomic already, and an explicit transaction makes a
        lone COPY measurably slower. Callers hold the lock from their reads
        to here, so nothing writes in between.
        """
        if len(steps) <= 1:
            for step in steps:
                step()
            return
        self._q("BEGIN TRANSACTION")
        try:
            for step in steps:
                step()
        except BaseException:
            # A failed statement may already have ended the transaction; the
            # error worth reporting is that one, not the ROLLBACK's.
            with suppress(RuntimeError):
                self._q("ROLLBACK")
            raise
        self._q("COMMIT")

    def _stmt(self, query: str, params: Mapping[str, Any] | None = None) -> Step:
        return lambda: self._q(query, params)

    def _each(self, query: str, rows: list[list[str]]) -> list[Step]:
        """One statement over ``rows``, or none when there are none."""
        return [self._stmt(query, {"rows": rows})] if rows else []

    def _copy(self, query: str, rows: list[list[str]]) -> Step:
        """A COPY ``query`` (with a ``{file}`` slot) loading ``rows`` from a scratch CSV file."""

        def step() -> None:
            assert self._scratch is not None
            self._scratch.mkdir(parents=True, exist_ok=True)  # survives /tmp cleaners
            with tempfile.NamedTemporaryFile(
                "w", suffix=".csv", dir=self._scratch, newline="", encoding="utf-8", delete=False
            ) as handle:
                csv.writer(handle, lineterminator="\n").writerows(rows)
            path = FsPath(handle.name)
            try:
                literal = "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"
                self._q(query.format(file=literal))
            finally:
                path.unlink(missing_ok=True)

        return step
