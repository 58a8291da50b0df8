"""Queue slot: enqueue-and-complete throughput of no-op tasks, Janus vs. the bare way.

The bare baselines hand the same no-op to the same workers with nothing
around it: a ``ThreadPoolExecutor`` for ``inline://``; a plain Dramatiq actor
(default middleware) on the same RabbitMQ for ``amqp://``. Neither keeps any
record of the work. Janus, by design, writes a durable ``tasks`` row per task
and moves it through three committed transitions (insert, claim, done), so a
crash loses nothing and a task runs again only if its worker died mid-run.
The first ratio therefore prices durability plus Janus's own work, and is
far below 1 for no-op tasks: it is bounded by the ledger's commit rate (a
SQLite WAL commit, or a PostgreSQL fsync per transition). For real tasks
(milliseconds to seconds of work each) the same fixed cost per task is what
matters.

A second row per ledger compares Janus inline with that floor: the same three
committed statements per task (insert, mark running, mark done) issued
through a raw DBAPI connection to the same database from one thread, with no
queue at all. Its ratio is the part of the cost Janus itself adds on top of
durability (above 1 where parallel workers share fsyncs through group commit).

Run: ``python -m benchmarks.slot_queue [amqp-url] [postgres-admin-url]``.
"""

from __future__ import annotations

import itertools
import pathlib
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

import dramatiq
import psycopg
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from psycopg import sql

from benchmarks._common import BenchRow, ops_per_second
from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.slots import queue as queue_slot
from janus_stack.urls import SlotURL

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
N = 500
WORKERS = 4
OPERATION = f"enqueue+complete no-op x{N}"
FLOOR = "vs 3 raw commits/task"


def _noop(payload: dict[str, Any]) -> None:
    return None


@contextmanager
def _ledger(kind: str, workdir: pathlib.Path, pg_admin: str) -> Iterator[Ledger]:
    """A migrated ledger: a SQLite file in ``workdir`` or a throwaway PostgreSQL database."""
    if kind == "sqlite":
        with Ledger(SlotURL.parse("relational", f"sqlite:///{workdir}/bench.db")) as ledger:
            migrations.upgrade(ledger)
            yield ledger
        return
    name = f"janus_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = pg_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        with Ledger(SlotURL.parse("relational", f"{url}/{name}")) as ledger:
            migrations.upgrade(ledger)
            yield ledger
    finally:
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _janus_work(queue: queue_slot.TaskQueue) -> Callable[[], None]:
    batches = itertools.count()

    def work() -> None:
        batch = next(batches)
        for i in range(N):
            queue.enqueue("noop", {"i": i}, idempotency_key=f"bench-{batch}-{i}", tenant="bench")
        if not queue.wait_idle(120):
            raise RuntimeError("the Janus queue did not drain within 120 s")

    return work


def _janus_ops(url: str, ledger: Ledger) -> float:
    handlers = queue_slot.TaskHandlers()
    handlers.register("noop", _noop)
    queue = queue_slot.open(SlotURL.parse("queue", url), ledger=ledger, handlers=handlers)
    try:
        queue.start(WORKERS)
        return ops_per_second(_janus_work(queue), N)
    finally:
        queue.close()
        delete_queues = getattr(queue, "delete_queues", None)
        if delete_queues is not None:
            delete_queues()


def _raw_pool_ops() -> float:
    with ThreadPoolExecutor(WORKERS) as pool:

        def work() -> None:
            wait([pool.submit(_noop, {"i": i}) for i in range(N)])

        return ops_per_second(work, N)


def _raw_dramatiq_ops(amqp_url: str) -> float:
    """A bare Dramatiq actor on its own broker; counts completions to know when it is done."""
    queue_name = f"janus_bench_raw_{uuid.uuid4().hex[:8]}"
    broker = RabbitmqBroker(url=amqp_url)
    done = threading.Semaphore(0)

    def noop(i: int) -> None:
        done.release()

    actor = dramatiq.Actor(
        noop, broker=broker, actor_name="noop", queue_name=queue_name, priority=0, options={}
    )
    worker = dramatiq.Worker(broker, worker_threads=WORKERS, worker_timeout=100)
    worker.start()
    try:

        def work() -> None:
            for i in range(N):
                actor.send(i)
            for _ in range(N):
                if not done.acquire(timeout=120):
                    raise RuntimeError("the bare Dramatiq worker did not drain within 120 s")

        return ops_per_second(work, N)
    finally:
        worker.stop()
        for name in (queue_name, f"{queue_name}.DQ", f"{queue_name}.XQ"):
            broker.channel.queue_delete(queue=name)
        broker.close()


def _durable_floor_ops(ledger: Ledger) -> float:
    """Three committed statements per task on the ledger's own database, one thread, raw DBAPI."""
    batches = itertools.count()
    mark = "?" if ledger.dialect == "sqlite" else "%s"
    conn = ledger.engine.raw_connection()
    try:
        cursor = conn.cursor()
        cursor.execute("CREATE TABLE floor (id VARCHAR(64) PRIMARY KEY, status TEXT, payload TEXT)")
        conn.commit()
        statements = (
            f"INSERT INTO floor VALUES ({mark}, 'queued', '{{}}')",
            f"UPDATE floor SET status = 'running' WHERE id = {mark}",
            f"UPDATE floor SET status = 'done' WHERE id = {mark}",
        )

        def work() -> None:
            batch = next(batches)
            for i in range(N):
                for statement in statements:
                    cursor.execute(statement, (f"{batch}-{i}",))
                    conn.commit()

        return ops_per_second(work, N)
    finally:
        conn.close()


def run(
    workdir: pathlib.Path,
    *,
    amqp_url: str = DEFAULT_AMQP_URL,
    pg_admin: str = DEFAULT_PG_ADMIN,
) -> list[BenchRow]:
    rows: list[BenchRow] = []
    raw_pool = _raw_pool_ops()
    raw_dramatiq = _raw_dramatiq_ops(amqp_url)
    for ledger_kind in ("sqlite", "postgresql"):
        with _ledger(ledger_kind, workdir, pg_admin) as ledger:
            inline = _janus_ops(f"inline://?workers={WORKERS}&poll=0.05", ledger)
            floor = _durable_floor_ops(ledger)
            rows.append(BenchRow("queue", f"inline/{ledger_kind}", OPERATION, 1, inline, raw_pool))
            rows.append(BenchRow("queue", f"inline/{ledger_kind}", FLOOR, 1, inline, floor))
        with _ledger(ledger_kind, workdir, pg_admin) as ledger:
            prefix = f"janus_bench_{uuid.uuid4().hex[:8]}"
            amqp = _janus_ops(f"{amqp_url.rstrip('/')}/?prefix={prefix}", ledger)
            rows.append(BenchRow("queue", f"amqp/{ledger_kind}", OPERATION, 1, amqp, raw_dramatiq))
    return rows


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results = run(
            pathlib.Path(tmp),
            amqp_url=sys.argv[1] if len(sys.argv) > 1 else DEFAULT_AMQP_URL,
            pg_admin=sys.argv[2] if len(sys.argv) > 2 else DEFAULT_PG_ADMIN,
        )
    print(f"{'backend':18} {'operation':28} {'janus ops/s':>12} {'raw ops/s':>12} {'ratio':>6}")
    for row in results:
        print(
            f"{row.backend:18} {row.operation:28} {row.janus_ops_s:12,.0f} "
            f"{row.raw_ops_s:12,.0f} {row.ratio:6.2f}"
        )
