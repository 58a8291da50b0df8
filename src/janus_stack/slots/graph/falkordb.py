"""FalkorDB backend: ``falkordb://[:password@]host:6379?graph=janus``.

FalkorDB is a Redis module speaking openCypher, so the whole core comes
from ``CypherGraph``. Where its dialect differs from Neo4j the shared
queries keep to the common ground: ``allShortestPaths`` needs both ends
bound by an earlier clause (``WITH a, b``, which Neo4j accepts too),
``shortestPath`` cannot run undirected (so it is not used), and
``CREATE INDEX`` has no ``IF NOT EXISTS`` (so "already indexed" is ignored).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from falkordb import FalkorDB
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from janus_stack.errors import SlotUnavailableError, SlotURLError
from janus_stack.slots.graph.cypher import CypherGraph
from janus_stack.urls import SlotURL

DEFAULT_GRAPH = "janus"
_INDEXES = (
    "CREATE INDEX FOR (e:Entity) ON (e.id)",
    "CREATE INDEX FOR (c:Chunk) ON (c.id)",
    "CREATE INDEX FOR (c:Chunk) ON (c.doc_id)",
    "CREATE INDEX FOR ()-[r:RELATED]-() ON (r.id)",
)


class FalkorDBGraph(CypherGraph):
    """The graph slot on a FalkorDB server; one named graph per Janus installation."""

    backend: ClassVar[str] = "falkordb"
    hint: ClassVar[str] = "check that FalkorDB is running and the host, port and password are right"

    def __init__(self, url: SlotURL, *, socket_timeout: float = 30.0) -> None:
        super().__init__(url)
        parts = urlsplit(url.resolved)
        if not parts.hostname:
            raise SlotURLError(f"graph slot: {url.redacted!r} names no host")
        self._host = parts.hostname
        self._port = parts.port or 6379
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self.graph_name = url.query.get("graph") or DEFAULT_GRAPH
        self._timeout = socket_timeout
        self._db: Any = None
        self._graph: Any = None

    def _open(self) -> None:
        self._db = FalkorDB(
            host=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            socket_timeout=self._timeout,
            socket_connect_timeout=min(self._timeout, 5.0),
        )
        self._graph = self._db.select_graph(self.graph_name)
        try:
            for statement in _INDEXES:
                try:
                    self._graph.query(statement)
                except ResponseError as exc:
                    if "already indexed" not in str(exc):  # a concurrent open made it
                        raise
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        db, self._db, self._graph = self._db, None, None
        if db is not None:
            db.close()

    def _run(self, query: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._require_open()
        try:
            result = self._graph.query(query, dict(params))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise SlotUnavailableError(
                f"graph slot: lost FalkorDB at {self.url.redacted}: {exc}", hint=self.hint
            ) from exc
        names = [name for _, name in result.header]
        return [dict(zip(names, row, strict=True)) for row in result.result_set]
