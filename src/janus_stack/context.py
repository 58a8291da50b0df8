"""The ``Janus`` context: owns the open ledger and slot backends of one process.

Slots open lazily on first use, so a command that only reads the ledger
never touches (or waits for) the embedded vector and graph engines. The
JANUS_HOME lock is taken just before the first single-writer engine opens.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self, TypeVar

from janus_stack.config import Settings
from janus_stack.events import EventLog
from janus_stack.home_lock import HomeLock
from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.slots import cache, embeddings, graph, llm, objects, queue, vectors
from janus_stack.slots.base import Slot
from janus_stack.telemetry import Telemetry
from janus_stack.urls import SlotURL

SlotT = TypeVar("SlotT", bound=Slot)


class Janus:
    """Everything one process has open, closed together.

    Args:
        settings: the effective settings.
        handlers: task handlers the queue runs; later capabilities register theirs.
        telemetry: where this process's metrics and spans go; handed to every
            slot it opens and closed with it. By default one is built from the
            settings (tracing only when ``otel_endpoint`` is set).
    """

    def __init__(
        self,
        settings: Settings,
        handlers: queue.TaskHandlers | None = None,
        *,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.handlers = handlers if handlers is not None else queue.TaskHandlers()
        self.telemetry = telemetry if telemetry is not None else Telemetry.from_settings(settings)
        self.home_lock = HomeLock(settings.home)
        self._ledger: Ledger | None = None
        self._slots: dict[str, Slot] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def ledger(self) -> Ledger:
        """The relational ledger, upgraded on first use when it is the embedded SQLite."""
        if self._ledger is None:
            ledger = Ledger(self.settings.slot_url("relational")).open()
            try:
                migrations.ensure_current(ledger)
            except BaseException:
                ledger.close()
                raise
            self._ledger = ledger
        return self._ledger

    @property
    def events(self) -> EventLog:
        return EventLog(self.ledger)

    @property
    def objects(self) -> objects.ObjectStore:
        return self._slot(objects.ObjectStore, lambda: objects.open(self._url("objects")))

    @property
    def vectors(self) -> vectors.VectorIndex:
        return self._slot(
            vectors.VectorIndex,
            lambda: vectors.open(self._url("vectors"), dim=self.embedder.dim),
        )

    @property
    def graph(self) -> graph.GraphStore:
        return self._slot(graph.GraphStore, lambda: graph.open(self._url("graph")))

    @property
    def queue(self) -> queue.TaskQueue:
        return self._slot(
            queue.TaskQueue,
            lambda: queue.open(self._url("queue"), ledger=self.ledger, handlers=self.handlers),
        )

    @property
    def cache(self) -> cache.Cache:
        return self._slot(cache.Cache, lambda: cache.open(self._url("cache")))

    @property
    def embedder(self) -> embeddings.Embedder:
        return self._slot(embeddings.Embedder, lambda: embeddings.open(self._url("embeddings")))

    @property
    def llm(self) -> llm.LanguageModel:
        """The language model; ``none://`` (the default) has ``configured`` False."""
        return self._slot(llm.LanguageModel, lambda: llm.open(self._url("llm")))

    def open_slot(self, name: str) -> Slot:
        """Open a slot by name (``objects``, ``vectors`` …); used by ``janus doctor``."""
        opened: Slot = getattr(self, "embedder" if name == "embeddings" else name)
        return opened

    def _url(self, slot: str) -> SlotURL:
        return self.settings.slot_url(slot)

    def _slot(self, kind: type[SlotT], build: Callable[[], Slot]) -> SlotT:
        name = kind.slot
        existing = self._slots.get(name)
        if existing is None:
            backend = build()
            backend.telemetry = self.telemetry
            if backend.single_writer:
                self.home_lock.acquire(self.settings.lock_timeout)
            backend.open()
            self._slots[name] = backend
            existing = backend
        assert isinstance(existing, kind)
        return existing

    def close(self) -> None:
        """Close every open slot, then the ledger, release JANUS_HOME and flush the spans."""
        for name in ("queue", "vectors", "graph", "objects", "cache", "embeddings", "llm"):
            backend = self._slots.pop(name, None)
            if backend is not None:
                backend.close()
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
        self.home_lock.release()
        self.telemetry.close()
