"""``amqp://``: Dramatiq on RabbitMQ as the transport between API processes and workers.

Messages carry only a task id; the payload, attempts and retry schedule stay
in the ledger, so this backend behaves exactly like ``inline://``. For that
reason the brokers are built with no middleware: Dramatiq's Retries,
TimeLimit and AgeLimit would otherwise make decisions the ledger's state
machine already makes.

Nothing is bound to Dramatiq's global broker. Each queue builds its own
brokers and declares its actor on them explicitly: one broker publishes
(``open``), and each ``start`` builds a fresh one for its ``dramatiq.Worker``,
because a Worker registers itself on its broker for good and a stopped
worker's broker cannot host the next one. Queue names are
``<prefix>.tasks`` (+ Dramatiq's ``.DQ`` delay and ``.XQ`` dead-letter
queues), so deployments and test runs sharing a RabbitMQ never collide.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dramatiq
import pika
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.common import dq_name, xq_name

from janus_stack.errors import ClosedError, SlotUnavailableError, SlotURLError
from janus_stack.ledger.database import Ledger
from janus_stack.slots.queue import TaskQueue
from janus_stack.slots.queue.handlers import TaskHandlers
from janus_stack.urls import MASK, SlotURL

#: Query keys pika's URLParameters understands; everything else is ours or an error.
PIKA_OPTIONS = (
    "backpressure_detection",
    "blocked_connection_timeout",
    "channel_max",
    "connection_attempts",
    "frame_max",
    "heartbeat",
    "locale",
    "retry_delay",
    "socket_timeout",
    "ssl_options",
    "stack_timeout",
    "tcp_options",
)
log = logging.getLogger(__name__)
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,100}")


class DramatiqQueue(TaskQueue):
    """Server backend: Dramatiq actors on RabbitMQ, one queue per ``prefix``."""

    backend: ClassVar[str] = "dramatiq"
    hint: ClassVar[str] = (
        "start RabbitMQ or fix the amqp:// URL (host, port, user, password, vhost)"
    )
    extra_options: ClassVar[tuple[str, ...]] = ("prefix", *PIKA_OPTIONS)

    def __init__(self, url: SlotURL, *, ledger: Ledger, handlers: TaskHandlers) -> None:
        super().__init__(url, ledger=ledger, handlers=handlers)
        self.prefix = url.query.get("prefix", "janus")
        if not _PREFIX.fullmatch(self.prefix):
            raise SlotURLError(
                f"queue slot: prefix={self.prefix!r} in {url.redacted!r} must be a letter or _ "
                "followed by letters, digits, _ or - (at most 101 characters)"
            )
        self.queue_name = f"{self.prefix}.tasks"
        self.actor_name = f"{self.prefix}.run_task"
        parts = urlsplit(url.resolved)
        pika_query = [(k, v) for k, v in parse_qsl(parts.query) if k in PIKA_OPTIONS]
        self._broker_url = urlunsplit(
            (parts.scheme, parts.netloc, parts.path or "/", urlencode(pika_query), "")
        )
        self._secrets = set(url.secrets) | ({parts.password} if parts.password else set())
        self._broker: Any = None
        self._actor: Any = None
        self._worker: Any = None
        self._worker_broker: Any = None

    def _new_broker(self) -> tuple[Any, Any]:
        broker = RabbitmqBroker(url=self._broker_url, middleware=[])
        actor = dramatiq.Actor(
            self._on_message,
            broker=broker,
            actor_name=self.actor_name,
            queue_name=self.queue_name,
            priority=0,
            options={},
        )
        return broker, actor

    def _open_transport(self) -> None:
        broker, actor = self._new_broker()
        try:
            broker.declare_queue(self.queue_name, ensure=True)
        except Exception as exc:
            broker.close()
            raise SlotUnavailableError(
                f"queue slot: cannot reach RabbitMQ at {self.url.redacted}: {self._scrub(exc)}",
                hint=self.hint,
            ) from exc
        self._broker, self._actor = broker, actor

    def _close_transport(self) -> None:
        if self._broker is not None:
            self._broker.close()
        self._broker = self._actor = None

    def _dispatch(self, task_id: str, delay_seconds: float) -> None:
        if self._actor is None:
            raise ClosedError("queue slot (dramatiq) is not open")
        delay = math.ceil(delay_seconds * 1000) if delay_seconds > 0 else None
        self._actor.send_with_options(args=(task_id,), delay=delay)

    def _start_workers(self, workers: int) -> None:
        broker, _actor = self._new_broker()
        worker = dramatiq.Worker(broker, worker_threads=workers, worker_timeout=100)
        try:
            worker.start()
        except Exception:
            broker.close()
            raise
        self._worker_broker, self._worker = broker, worker

    def _stop_workers(self, timeout: float) -> None:
        if self._worker is not None:
            self._worker.stop(timeout=int(timeout * 1000))
        if self._worker_broker is not None:
            self._worker_broker.close()
        self._worker = self._worker_broker = None

    def _may_have_lost(self) -> bool:
        """Only with no ready message left can an overdue row's message be missing."""
        try:
            ready, _delayed, _dead = self._broker.get_queue_message_counts(self.queue_name)
        except Exception:
            log.debug("cannot count the messages of %s", self.queue_name, exc_info=True)
            with contextlib.suppress(Exception):
                del self._broker.connection  # the next use reconnects
            return False
        return bool(ready == 0)

    def _on_message(self, task_id: str) -> None:
        self._execute(task_id)

    def delete_queues(self) -> None:
        """Delete this prefix's queues (main, delay, dead-letter) with their messages.

        For tests and ``janus`` maintenance; works whether the slot is open or not.
        """
        connection = pika.BlockingConnection(pika.URLParameters(self._broker_url))
        try:
            channel = connection.channel()
            for name in (self.queue_name, dq_name(self.queue_name), xq_name(self.queue_name)):
                channel.queue_delete(queue=name)
        finally:
            connection.close()

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()
        message = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
        for secret in self._secrets:
            message = message.replace(secret, MASK)
        return message
