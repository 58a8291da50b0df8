"""Neo4j backend: ``neo4j://user:password@host:7687?database=neo4j`` (also ``neo4j+s``, ``bolt``).

Everything but the connection comes from ``CypherGraph``. Uniqueness
constraints on (tenant, id) make MERGE race-free across the many API and
worker processes that share one server, and give the index MERGE needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from neo4j import Driver, GraphDatabase
from neo4j.exceptions import ServiceUnavailable, SessionExpired

from janus_stack.errors import SlotUnavailableError, SlotURLError
from janus_stack.slots.graph.cypher import CypherGraph
from janus_stack.urls import SlotURL

_SCHEMA = (
    "CREATE CONSTRAINT janus_entity_key IF NOT EXISTS "
    "FOR (e:Entity) REQUIRE (e.tenant, e.id) IS UNIQUE",
    "CREATE CONSTRAINT janus_chunk_key IF NOT EXISTS "
    "FOR (c:Chunk) REQUIRE (c.tenant, c.id) IS UNIQUE",
    "CREATE INDEX janus_chunk_doc IF NOT EXISTS FOR (c:Chunk) ON (c.tenant, c.doc_id)",
    "CREATE INDEX janus_related_id IF NOT EXISTS FOR ()-[r:RELATED]-() ON (r.id)",
)


class Neo4jGraph(CypherGraph):
    """The graph slot on a Neo4j server (5.x), through the official driver."""

    backend: ClassVar[str] = "neo4j"
    hint: ClassVar[str] = "check that Neo4j is running and the user, password and host are right"

    def __init__(self, url: SlotURL) -> None:
        super().__init__(url)
        parts = urlsplit(url.resolved)
        if not parts.hostname:
            raise SlotURLError(f"graph slot: {url.redacted!r} names no host")
        self._uri = f"{parts.scheme}://{parts.hostname}:{parts.port or 7687}"
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else ""
        self._auth = (user, password) if user else None
        self.database = url.query.get("database") or None
        self._driver: Driver | None = None

    def _open(self) -> None:
        driver = GraphDatabase.driver(self._uri, auth=self._auth)
        try:
            driver.verify_connectivity()
            for statement in _SCHEMA:
                driver.execute_query(statement, database_=self.database)
        except BaseException:
            driver.close()
            raise
        self._driver = driver

    def _close(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.close()

    def _run(self, query: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._require_open()
        assert self._driver is not None
        try:
            result = self._driver.execute_query(query, dict(params), database_=self.database)
        except (ServiceUnavailable, SessionExpired) as exc:
            raise SlotUnavailableError(
                f"graph slot: lost Neo4j at {self.url.redacted}: {exc}", hint=self.hint
            ) from exc
        return [record.data() for record in result.records]
