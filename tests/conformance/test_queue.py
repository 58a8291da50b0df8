"""One suite for every queue transport, over every ledger backend.

``make_queue`` is parametrized over the transports (inline, Dramatiq on
RabbitMQ) and combined with the ``ledger`` fixture (SQLite, PostgreSQL), so
each test runs four times. RabbitMQ runs use a queue prefix unique to the
test and delete their queues afterwards. Side effects are counted outside
the ledger, so "exactly once" is checked against what handlers really did.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import RUN_ID, free_port
from janus_stack.errors import (
    ClosedError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    SlotUnavailableError,
    SlotURLError,
)
from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Task
from janus_stack.slots import queue as queue_slot
from janus_stack.slots.queue import TaskHandlers, TaskQueue
from janus_stack.slots.queue.dramatiq import DramatiqQueue
from janus_stack.urls import SlotURL

IDLE = 30.0


class Effects:
    """Thread-safe record of every handler call: how often, and when."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.times: dict[str, list[float]] = collections.defaultdict(list)

    def hit(self, key: str) -> int:
        with self._lock:
            self.counts[key] += 1
            self.times[key].append(time.monotonic())
            return self.counts[key]


class QueueFactory:
    """Opens queues of one transport on one ledger and cleans them all up."""

    def __init__(self, transport: str, ledger: Ledger, base_url: str) -> None:
        self.transport = transport
        self.ledger = ledger
        self.base_url = base_url
        self.opened: list[TaskQueue] = []

    def __call__(self, handlers: TaskHandlers, **options: Any) -> TaskQueue:
        query = "&".join(f"{key}={value}" for key, value in options.items())
        separator = "&" if "?" in self.base_url else "?"
        text = self.base_url + (separator + query if query else "")
        queue = queue_slot.open(SlotURL.parse("queue", text), ledger=self.ledger, handlers=handlers)
        self.opened.append(queue)
        return queue

    def cleanup(self) -> None:
        for queue in self.opened:
            queue.close()
        if self.transport == "amqp" and self.opened:
            first = self.opened[0]
            assert isinstance(first, DramatiqQueue)
            first.delete_queues()  # every queue of the test shares its prefix


@pytest.fixture(params=["inline", "amqp"])
def make_queue(request: pytest.FixtureRequest, ledger: Ledger) -> Iterator[QueueFactory]:
    if request.param == "amqp":
        amqp_url: str = request.getfixturevalue("amqp_url")
        prefix = f"janus_test_{RUN_ID}_{uuid.uuid4().hex[:8]}"
        base = f"{amqp_url.rstrip('/')}/?prefix={prefix}"
    else:
        base = "inline://?poll=0.2"
    factory = QueueFactory(request.param, ledger, base)
    try:
        yield factory
    finally:
        factory.cleanup()


def test_task_runs_and_stores_its_result(make_queue: QueueFactory) -> None:
    handlers = TaskHandlers()
    handlers.register("add", lambda payload: {"sum": payload["a"] + payload["b"]})
    queue = make_queue(handlers, workers=2)
    queue.start()
    record = queue.enqueue("add", {"a": 2, "b": 3}, idempotency_key="add-1", tenant="t1")
    assert record.status == "queued"
    assert record.tenant == "t1" and record.payload == {"a": 2, "b": 3}
    assert queue.wait_idle(IDLE)
    done = queue.get(record.id)
    assert (done.status, done.result, done.attempts, done.last_error) == (
        "done",
        {"sum": 5},
        1,
        None,
    )
    assert done.created_at.tzinfo is not None and done.updated_at >= done.created_at

    # Stopped workers leave new work queued in the ledger; starting again runs it.
    queue.stop()
    later = queue.enqueue("add", {"a": 1, "b": 1}, idempotency_key="add-2", tenant="t1")
    time.sleep(0.3)
    assert queue.get(later.id).status == "queued"
    queue.start()
    assert queue.wait_idle(IDLE)
    assert queue.get(later.id).result == {"sum": 2}


def test_idempotency_key_runs_the_task_once(make_queue: QueueFactory) -> None:
    effects = Effects()
    handlers = TaskHandlers()
    handlers.register("once", lambda payload: {"n": effects.hit(payload["k"])})
    queue = make_queue(handlers, workers=3)
    queue.start()
    first = queue.enqueue("once", {"k": "a"}, idempotency_key="key-a", tenant="t")
    assert queue.wait_idle(IDLE)
    again = queue.enqueue("once", {"k": "a"}, idempotency_key="key-a", tenant="t")
    assert again.id == first.id and again.status == "done"

    # Racing enqueues of one key from several threads create one task.
    ids: list[str] = []
    barrier = threading.Barrier(6)

    def racer() -> None:
        barrier.wait()
        ids.append(queue.enqueue("once", {"k": "b"}, idempotency_key="key-b", tenant="t").id)

    threads = [threading.Thread(target=racer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 1
    assert queue.wait_idle(IDLE)
    assert effects.counts == {"a": 1, "b": 1}
    assert len(queue.list(name="once")) == 2

    with pytest.raises(InvalidInputError, match="key-a"):
        queue.enqueue("once", {"k": "other"}, idempotency_key="key-a", tenant="t")


def test_failing_task_retries_with_backoff_then_succeeds(make_queue: QueueFactory) -> None:
    effects = Effects()

    def flaky(payload: dict[str, Any]) -> dict[str, Any]:
        if effects.hit("flaky") < 3:
            raise RuntimeError("transient failure")
        return {"ok": True}

    handlers = TaskHandlers()
    handlers.register("flaky", flaky, max_attempts=4, backoff_base=0.2, backoff_max=5)
    queue = make_queue(handlers, workers=2)
    queue.start()
    record = queue.enqueue("flaky", {}, idempotency_key="flaky-1", tenant="t")
    assert queue.wait_idle(IDLE)
    done = queue.get(record.id)
    assert (done.status, done.attempts, done.result) == ("done", 3, {"ok": True})
    assert done.last_error is not None and "transient failure" in done.last_error
    first, second, third = effects.times["flaky"]
    assert second - first >= 0.2 - 0.01  # backoff_base * 2**0
    assert third - second >= 0.4 - 0.01  # backoff_base * 2**1


def test_always_failing_task_ends_dead_and_retry_reruns_it(make_queue: QueueFactory) -> None:
    effects = Effects()
    healed = threading.Event()

    def broken(payload: dict[str, Any]) -> dict[str, Any]:
        effects.hit("broken")
        if not healed.is_set():
            raise ValueError("boom: the disk is on fire")
        return {"healed": True}

    handlers = TaskHandlers()
    handlers.register("broken", broken, max_attempts=3, backoff_base=0.05, backoff_max=0.1)
    handlers.register("bad-result", lambda payload: "not a dict", max_attempts=1)  # type: ignore[arg-type,return-value]
    queue = make_queue(handlers, workers=2)
    queue.start()
    record = queue.enqueue("broken", {}, idempotency_key="broken-1", tenant="t")
    bad = queue.enqueue("bad-result", {}, idempotency_key="bad-1", tenant="t")
    assert queue.wait_idle(IDLE)
    dead = queue.get(record.id)
    assert (dead.status, dead.attempts, dead.max_attempts) == ("dead", 3, 3)
    assert (
        dead.last_error is not None and "ValueError: boom: the disk is on fire" in dead.last_error
    )
    assert effects.counts["broken"] == 3
    assert {r.id for r in queue.list(status="dead")} == {record.id, bad.id}
    bad_record = queue.get(bad.id)
    assert bad_record.status == "dead" and "handler returned str" in (bad_record.last_error or "")

    healed.set()
    assert queue.retry(record.id).status == "queued"
    assert queue.wait_idle(IDLE)
    done = queue.get(record.id)
    assert (done.status, done.attempts, done.result) == ("done", 1, {"healed": True})
    assert effects.counts["broken"] == 4
    with pytest.raises(InvalidInputError, match="only dead tasks"):
        queue.retry(record.id)
    with pytest.raises(NotFoundError):
        queue.retry(str(uuid.uuid4()))


def test_bad_input_is_refused_with_a_clear_error(make_queue: QueueFactory) -> None:
    handlers = TaskHandlers()
    handlers.register("echo", lambda payload: payload)
    queue = make_queue(handlers, max_payload=1024)
    with pytest.raises(InvalidInputError, match=r"unknown task 'nope'.*echo"):
        queue.enqueue("nope", {}, idempotency_key="k1", tenant="t")
    with pytest.raises(InvalidInputError, match="not JSON-serialisable"):
        queue.enqueue("echo", {"s": {1, 2}}, idempotency_key="k2", tenant="t")
    with pytest.raises(InvalidInputError, match="not JSON-serialisable"):
        queue.enqueue("echo", {"x": float("nan")}, idempotency_key="k3", tenant="t")
    with pytest.raises(InvalidInputError, match="must be a JSON object"):
        queue.enqueue("echo", [1, 2], idempotency_key="k4", tenant="t")  # type: ignore[arg-type]
    with pytest.raises(PayloadTooLargeError, match="limit is 1024"):
        queue.enqueue("echo", {"blob": "x" * 2000}, idempotency_key="k5", tenant="t")
    with pytest.raises(InvalidInputError, match="idempotency_key"):
        queue.enqueue("echo", {}, idempotency_key="", tenant="t")
    with pytest.raises(InvalidInputError, match="tenant"):
        queue.enqueue("echo", {}, idempotency_key="k6", tenant="")
    with pytest.raises(InvalidInputError, match="unknown task status"):
        queue.list(status="exploded")
    with pytest.raises(NotFoundError):
        queue.get(str(uuid.uuid4()))
    assert queue.list() == []


def test_competing_workers_run_each_task_exactly_once(make_queue: QueueFactory) -> None:
    effects = Effects()

    def work(payload: dict[str, Any]) -> dict[str, Any]:
        effects.hit(payload["n"])
        time.sleep(0.005)
        return {"n": payload["n"]}

    handlers = TaskHandlers()
    handlers.register("work", work)
    # Two queue instances on one ledger (and, for amqp, one RabbitMQ queue) compete.
    first, second = make_queue(handlers, workers=4), make_queue(handlers, workers=4)
    first.start()
    second.start()
    names = [f"task-{n}" for n in range(60)]
    for n, name in enumerate(names):
        target = first if n % 2 else second
        target.enqueue("work", {"n": name}, idempotency_key=name, tenant="t")
    assert first.wait_idle(IDLE)
    records = first.list(limit=1000)
    assert len(records) == 60
    assert {r.status for r in records} == {"done"} and {r.attempts for r in records} == {1}
    assert effects.counts == dict.fromkeys(names, 1)


def _insert(ledger: Ledger, name: str, *, status: str, attempts: int, lease_delta: float) -> str:
    now = datetime.now(UTC)
    task_id = str(uuid.uuid4())
    with ledger.session() as session:
        session.add(
            Task(
                id=task_id,
                name="work",
                tenant_id="t",
                idempotency_key=name,
                payload={"n": name},
                status=status,
                attempts=attempts,
                max_attempts=3,
                next_attempt_at=now + timedelta(seconds=lease_delta),
                created_at=now,
                updated_at=now,
            )
        )
    return task_id


def test_fresh_queue_recovers_work_left_by_a_killed_process(make_queue: QueueFactory) -> None:
    ledger = make_queue.ledger
    # What a process killed mid-run leaves behind: a running row whose lease
    # ran out, a row it never got to, and a task on its last attempt.
    crashed = _insert(ledger, "crashed", status="running", attempts=1, lease_delta=-120)
    waiting = _insert(ledger, "waiting", status="queued", attempts=0, lease_delta=-120)
    doomed = _insert(ledger, "doomed", status="running", attempts=3, lease_delta=-120)
    # A live worker elsewhere still holds this one: it must not be taken over.
    alive = _insert(ledger, "alive", status="running", attempts=1, lease_delta=3600)

    effects = Effects()
    handlers = TaskHandlers()
    handlers.register("work", lambda payload: {"ran": effects.hit(payload["n"])})
    queue = make_queue(handlers, workers=2)
    queue.start()
    deadline = time.monotonic() + IDLE
    while {queue.get(crashed).status, queue.get(waiting).status} != {"done"}:
        assert time.monotonic() < deadline, "recovered tasks did not finish"
        time.sleep(0.05)
    assert queue.get(crashed).attempts == 2
    lost = queue.get(doomed)
    assert lost.status == "dead" and "worker lost" in (lost.last_error or "")
    assert queue.get(alive).status == "running"
    assert effects.counts == {"crashed": 1, "waiting": 1}


def test_probe_round_trips_and_leaves_no_row(make_queue: QueueFactory) -> None:
    queue = make_queue(TaskHandlers())
    queue.probe(timeout=20)
    assert queue.list() == []
    queue.start(1)
    queue.probe(timeout=20)
    assert queue.list() == []


def test_use_after_close_raises_closed_error(make_queue: QueueFactory) -> None:
    handlers = TaskHandlers()
    handlers.register("echo", lambda payload: payload)
    queue = make_queue(handlers)
    queue.start(1)
    queue.close()
    with pytest.raises(ClosedError):
        queue.enqueue("echo", {}, idempotency_key="k", tenant="t")
    with pytest.raises(ClosedError):
        queue.list()
    with pytest.raises(ClosedError):
        queue.start()


def test_unknown_scheme_and_bad_options_are_url_errors(tmp_path: Path) -> None:
    ledger = Ledger(SlotURL.parse("relational", f"sqlite:///{tmp_path}/l.db"))
    for text, pattern in [
        ("kafka://broker:9092", r"unknown scheme 'kafka'.*amqp://.*inline://"),
        ("inline://?workers=0", "workers='0'"),
        ("inline://?bogus=1", "unknown option.*bogus"),
        ("amqp://guest:guest@127.0.0.1/?prefix=no.dots", "prefix="),
    ]:
        with pytest.raises(SlotURLError, match=pattern):
            queue_slot.open(SlotURL.parse("queue", text), ledger=ledger, handlers=TaskHandlers())


def test_unreachable_rabbitmq_fails_clearly_without_leaking_the_password(tmp_path: Path) -> None:
    with Ledger(SlotURL.parse("relational", f"sqlite:///{tmp_path}/l.db")) as ledger:
        migrations.upgrade(ledger)
        url = SlotURL.parse("queue", f"amqp://guest:s3cr3t-pw@127.0.0.1:{free_port()}/")
        with pytest.raises(SlotUnavailableError, match="cannot reach RabbitMQ") as caught:
            queue_slot.open(url, ledger=ledger, handlers=TaskHandlers())
        assert "s3cr3t-pw" not in str(caught.value)


def test_unmigrated_ledger_is_reported(tmp_path: Path) -> None:
    with Ledger(SlotURL.parse("relational", f"sqlite:///{tmp_path}/l.db")) as ledger:
        with pytest.raises(SlotUnavailableError, match="no usable tasks table") as caught:
            queue_slot.open(
                SlotURL.parse("queue", "inline://"), ledger=ledger, handlers=TaskHandlers()
            )
        assert caught.value.hint is not None and "upgrade" in caught.value.hint


CRASHING_WORKER = """
import sys, time
from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.slots import queue as queue_slot
from janus_stack.urls import SlotURL

db, effects, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")

def work(payload):
    if payload["slow"]:
        time.sleep(120)
    with open(effects, "a") as out:
        out.write(payload["n"] + "\\n")
    return {"n": payload["n"]}

handlers = queue_slot.TaskHandlers()
handlers.register("crash.work", work)
with Ledger(SlotURL.parse("relational", db)) as ledger:
    migrations.upgrade(ledger)
    url = SlotURL.parse("queue", "inline://?workers=3&lease=1&poll=0.05")
    queue = queue_slot.open(url, ledger=ledger, handlers=handlers)
    queue.start()
    for name in names:
        queue.enqueue("crash.work", {"n": name, "slow": name.startswith("slow")},
                      idempotency_key=name, tenant="t")
    time.sleep(300)
"""


def test_killed_process_loses_no_work_and_doubles_none(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/ledger.db"
    effects = tmp_path / "effects.txt"
    effects.touch()
    names = [f"fast-{n}" for n in range(3)] + [f"slow-{n}" for n in range(3)]
    names += [f"late-{n}" for n in range(3)]
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(CRASHING_WORKER))
    child = subprocess.Popen(
        [sys.executable, str(script), db, str(effects), ",".join(names)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        with Ledger(SlotURL.parse("relational", db)) as ledger:
            migrations.upgrade(ledger)
            handlers = TaskHandlers()
            handlers.register("crash.work", lambda p: {"n": p["n"]})
            queue = queue_slot.open(
                SlotURL.parse("queue", "inline://"), ledger=ledger, handlers=handlers
            )
            expected = {"done": 3, "running": 3, "queued": 3}
            deadline = time.monotonic() + 30
            while True:
                counts = collections.Counter(r.status for r in queue.list())
                if counts == expected:
                    break
                assert child.poll() is None, "the worker process died on its own"
                assert time.monotonic() < deadline, f"worker never reached {expected}: {counts}"
                time.sleep(0.05)
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            queue.close()

            def finish(payload: dict[str, Any]) -> dict[str, Any]:
                with effects.open("a") as out:
                    out.write(payload["n"] + "\n")
                return {"n": payload["n"]}

            handlers = TaskHandlers()
            handlers.register("crash.work", finish)
            url = SlotURL.parse("queue", "inline://?workers=3&lease=1&poll=0.05")
            with queue_slot.open(url, ledger=ledger, handlers=handlers) as fresh:
                fresh.start()
                assert fresh.wait_idle(IDLE)
                records = {r.idempotency_key: r for r in fresh.list()}
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert {r.status for r in records.values()} == {"done"}
    assert sorted(effects.read_text().split()) == sorted(names)
    assert {name: records[name].attempts for name in names if name.startswith("slow")} == {
        f"slow-{n}": 2 for n in range(3)
    }
    assert all(records[name].attempts == 1 for name in names if not name.startswith("slow"))
