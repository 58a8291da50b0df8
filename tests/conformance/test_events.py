"""The event log's contract, run on every ledger backend (SQLite file, PostgreSQL).

Tampering is simulated as an attacker with DBA rights: on PostgreSQL the
append-only triggers are bypassed with ``session_replication_role = replica``,
on SQLite they are dropped. ``verify`` must still name the first broken seq.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, insert, text, update
from sqlalchemy import exc as sa_exc

from janus_stack.errors import IntegrityError, InvalidInputError, PayloadTooLargeError
from janus_stack.events import (
    GENESIS_HASH,
    ChainChecker,
    EventLog,
    EventRecord,
    canonical_json,
    event_hash,
)
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Event
from janus_stack.urls import SlotURL


@pytest.fixture
def log(ledger: Ledger) -> EventLog:
    return EventLog(ledger)


def fill(log: EventLog, n: int, **overrides: Any) -> list[EventRecord]:
    fields: dict[str, Any] = {
        "tenant": "acme",
        "actor": "tester",
        "type": "test.event",
        "subject": "doc",
    }
    fields.update(overrides)
    return [log.append(payload={"n": i}, **fields) for i in range(n)]


def tamper(ledger: Ledger, action: Callable[[Connection], object]) -> None:
    """Run ``action`` with the append-only triggers out of the way, as a DBA could."""
    with ledger.engine.begin() as connection:
        if ledger.dialect == "postgresql":
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        else:
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS events_no_update")
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS events_no_delete")
        action(connection)


# -- appending and reading ---------------------------------------------------


def test_append_stores_links_and_hashes_as_documented(log: EventLog) -> None:
    assert log.head() is None
    assert log.count() == 0
    rich: dict[str, Any] = {
        "text": "naïve ✓ 日本 \n\t",
        "nested": {"list": [1, 2.5, -0.0, None, True], "empty": {}},
        "big": 2**62,
        "tuple": (1, 2),
    }
    before = datetime.now(UTC)
    first = log.append(
        tenant="acme",
        actor="älice",
        type="agent.tool_call",
        subject="s",
        payload={"b": 1, "a": "ü"},
    )
    second = log.append(tenant="acme", actor="bob", type="ingest.x", subject="d", payload=rich)
    after = datetime.now(UTC)

    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert first.hash == first.expected_hash() != second.hash
    assert before <= first.time <= second.time <= after
    assert first.time.tzinfo is not None
    # The payload is stored as it will read back (tuples become lists), so it re-hashes.
    assert second.payload["tuple"] == [1, 2]
    assert log.query() == [first, second]
    assert log.head() == second
    assert log.count() == 2

    # The rule recomputed by hand, so a silent change of it breaks this test.
    stamp = first.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = (
        '{"actor":"älice","payload":{"a":"ü","b":1},"seq":1,"subject":"s",'
        f'"tenant":"acme","time":"{stamp}","type":"agent.tool_call"}}'
    )
    assert first.hash == hashlib.sha256((GENESIS_HASH + body).encode("utf-8")).hexdigest()
    assert len(stamp) == 27  # microseconds always present


def test_query_filters(log: EventLog) -> None:
    spec = [
        ("acme", "alice", "ingest.document.added", "doc-1"),
        ("acme", "bob", "ingest.chunked", "doc-1"),
        ("acme", "alice", "ingestion.other", "doc-2"),
        ("acme", "alice", "ingest", "doc-2"),
        ("other", "alice", "ingest.document.added", "doc-1"),
        ("acme", "carol", "INGEST.upper", "doc-3"),
        ("acme", "carol", "auth.denied", "key-1"),
    ]
    records = [
        log.append(tenant=t, actor=a, type=ty, subject=s, payload={"i": i})
        for i, (t, a, ty, s) in enumerate(spec)
    ]

    def seqs(**filters: Any) -> list[int]:
        return [r.seq for r in log.query(**filters)]

    assert seqs() == [r.seq for r in records]
    assert seqs(tenant="other") == [5]
    assert seqs(tenant="nobody") == []
    assert seqs(actor="alice") == [1, 3, 4, 5]
    assert seqs(subject="doc-1") == [1, 2, 5]
    assert seqs(type="ingest.document.added") == [1, 5]
    assert seqs(type="ingest") == [4]
    assert seqs(type="ingest.*") == [1, 2, 5]  # not "ingestion.*", "ingest" or "INGEST.*"
    assert seqs(type="ingest.document.*") == [1, 5]
    assert seqs(type="INGEST.*") == [6]
    assert seqs(tenant="acme", actor="alice", type="ingest.*") == [1]
    assert seqs(tenant="acme", subject="doc-2", actor="alice") == [3, 4]
    assert log.count(tenant="acme") == 6
    assert log.count(tenant="other") == 1


def test_query_time_window_and_paging(log: EventLog) -> None:
    records = []
    for i in range(25):
        records.append(
            log.append(tenant="acme", actor="a", type="t", subject="s", payload={"i": i})
        )
        time.sleep(0.001)  # distinct timestamps, so the window edges are unambiguous
    assert all(a.time < b.time for a, b in itertools.pairwise(records))

    assert log.query(since=records[10].time, limit=1000) == records[10:]
    assert log.query(until=records[10].time, limit=1000) == records[:10]
    assert log.query(since=records[3].time, until=records[6].time) == records[3:6]
    # Any timezone names the same instant.
    shifted = records[20].time.astimezone(timezone(timedelta(hours=-7)))
    assert log.query(since=shifted, limit=1000) == records[20:]
    assert log.query(since=records[-1].time + timedelta(seconds=1)) == []

    pages: list[list[EventRecord]] = []
    after = 0
    while page := log.query(after_seq=after, limit=10):
        pages.append(page)
        after = page[-1].seq
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [r for p in pages for r in p] == records
    assert log.query(after_seq=20, limit=2) == records[20:22]


# -- verification and tampering ------------------------------------------------


def test_verify_an_intact_log_and_its_export(log: EventLog) -> None:
    empty = log.verify()
    assert (empty.ok, empty.checked, empty.first_broken_seq, empty.reason) == (True, 0, None, None)
    fill(log, 10)
    for batch in (1, 3, 10, 1000):
        report = log.verify(batch=batch)
        assert (report.ok, report.checked, report.first_broken_seq) == (True, 10, None)

    # An export (JSON) checks with the same rules, no database needed.
    exported = json.loads(json.dumps([r.to_dict() for r in log.query()]))
    checker = ChainChecker()
    for item in exported:
        item["time"] = datetime.fromisoformat(item["time"])
        assert checker.feed(EventRecord(**item))
    assert checker.report().checked == 10
    exported[2]["payload"] = {"n": -1}
    checker = ChainChecker()
    assert [checker.feed(EventRecord(**item)) for item in exported[:3]] == [True, True, False]
    assert checker.report().first_broken_seq == 3


def _change_payload(connection: Connection) -> None:
    connection.execute(update(Event).where(Event.seq == 4).values(payload={"n": 999}))


def _change_time(connection: Connection) -> None:
    moved = datetime(2020, 1, 1, tzinfo=UTC)
    connection.execute(update(Event).where(Event.seq == 4).values(time=moved))


def _delete_row(connection: Connection) -> None:
    connection.execute(text("DELETE FROM events WHERE seq = 4"))


def _delete_rows(connection: Connection) -> None:
    connection.execute(text("DELETE FROM events WHERE seq IN (4, 5, 6)"))


def _delete_first(connection: Connection) -> None:
    connection.execute(text("DELETE FROM events WHERE seq = 1"))


def _rewrite_hash(connection: Connection) -> None:
    connection.execute(update(Event).where(Event.seq == 4).values(hash="f" * 64))


def _reseal(connection: Connection) -> None:
    """Change seq 4 and give it a correct new hash: the break shows at seq 5."""
    row = connection.execute(Event.__table__.select().where(Event.seq == 4)).one()
    forged = EventRecord(
        seq=4,
        time=row.time if row.time.tzinfo else row.time.replace(tzinfo=UTC),
        tenant=row.tenant_id,
        actor="mallory",
        type=row.type,
        subject=row.subject,
        payload=row.payload,
        prev_hash=row.prev_hash,
        hash="",
    )
    connection.execute(
        update(Event).where(Event.seq == 4).values(actor="mallory", hash=forged.expected_hash())
    )


def _unreadable_payload(connection: Connection) -> None:
    # PostgreSQL's json type refuses broken JSON, so there it is a non-object.
    value = "'[1, 2]'" if connection.dialect.name == "postgresql" else "'{broken'"
    connection.execute(text(f"UPDATE events SET payload = {value} WHERE seq = 4"))


TAMPERING: list[tuple[Callable[[Connection], object], int, str]] = [
    (_change_payload, 4, "hash mismatch"),
    (_change_time, 4, "hash mismatch"),
    (_rewrite_hash, 4, "hash mismatch"),
    (_unreadable_payload, 4, "hash mismatch"),
    (_reseal, 5, "prev_hash does not link"),
    (_delete_row, 4, "gap before seq 5"),
    (_delete_rows, 4, "gap before seq 7"),
    (_delete_first, 1, "gap before seq 2"),
]


def _wipe(connection: Connection) -> None:
    connection.execute(text("DELETE FROM events"))


def test_verify_reports_the_first_broken_seq(ledger: Ledger, log: EventLog) -> None:
    """Each kind of tampering on a fresh 8-event chain (one database per backend, for speed)."""
    problems: list[str] = []
    for action, broken_seq, reason in TAMPERING:
        tamper(ledger, _wipe)
        fill(log, 8)
        assert log.verify().ok
        tamper(ledger, action)
        for batch in (2, 1000):
            report = log.verify(batch=batch)
            found = (report.ok, report.first_broken_seq, report.checked)
            if found != (False, broken_seq, broken_seq - 1) or not (report.reason or "").startswith(
                reason
            ):
                problems.append(f"{action.__name__} (batch {batch}): {report}")
        if action is _unreadable_payload:  # reading it is refused too, not crashed
            assert len(log.query(limit=3)) == 3
            with pytest.raises(IntegrityError, match="seq 4"):
                log.query()
    assert problems == []


def test_the_database_refuses_update_delete_and_truncate(ledger: Ledger, log: EventLog) -> None:
    fill(log, 3)
    statements = [
        "UPDATE events SET actor = 'mallory' WHERE seq = 2",
        "UPDATE events SET hash = hash",
        "DELETE FROM events WHERE seq = 3",
        "DELETE FROM events",
    ]
    if ledger.dialect == "postgresql":
        statements.append("TRUNCATE events")
    for statement in statements:
        with pytest.raises(sa_exc.DBAPIError, match="append-only"), ledger.engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert log.count() == 3
    assert log.query()[1].actor == "tester"
    assert log.verify().ok


# -- concurrency ---------------------------------------------------------------


def test_appends_from_eight_threads_never_fork(log: EventLog) -> None:
    per_thread = 25
    results: dict[int, list[EventRecord]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(worker: int) -> None:
        try:
            start.wait()
            results[worker] = [
                log.append(
                    tenant="acme", actor=f"w{worker}", type="t", subject=str(i), payload={"i": i}
                )
                for i in range(per_thread)
            ]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    seqs = sorted(r.seq for records in results.values() for r in records)
    assert seqs == list(range(1, 8 * per_thread + 1))
    for records in results.values():
        assert [r.seq for r in records] == sorted(r.seq for r in records)
    report = log.verify(batch=17)
    assert (report.ok, report.checked) == (True, 8 * per_thread)


def _append_from_process(url: str, label: str, count: int, start: Any) -> None:
    """Runs in a forked child with its own engine and connections."""
    with Ledger(SlotURL.parse("relational", url)) as ledger:
        log = EventLog(ledger)
        log.head()  # connect before the start signal
        start.wait(timeout=30)
        for i in range(count):
            log.append(
                tenant="acme", actor=label, type="t.process", subject=str(i), payload={"i": i}
            )


def test_appends_from_three_processes_never_fork(ledger_url: str, log: EventLog) -> None:
    """Forked, not spawned: separate processes without paying a fresh interpreter's imports."""
    per_process = 25
    context = multiprocessing.get_context("fork")
    start = context.Barrier(4)
    workers = [
        context.Process(target=_append_from_process, args=(ledger_url, f"p{n}", per_process, start))
        for n in range(3)
    ]
    for worker in workers:
        worker.start()
    try:
        start.wait(timeout=30)  # release them together so their appends interleave
        for worker in workers:
            worker.join(timeout=60)
        assert [worker.exitcode for worker in workers] == [0, 0, 0]
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()

    records = log.query(limit=1000)
    assert [r.seq for r in records] == list(range(1, 3 * per_process + 1))
    for n in range(3):
        mine = [r for r in records if r.actor == f"p{n}"]
        assert [r.payload["i"] for r in mine] == list(range(per_process))
    report = log.verify()
    assert (report.ok, report.checked) == (True, 3 * per_process)


def test_a_writer_bypassing_the_lock_cannot_fork_the_chain(ledger: Ledger, log: EventLog) -> None:
    """An outside INSERT holds the next seq uncommitted; the append must land after it."""
    (head,) = fill(log, 1)
    rogue = EventRecord(
        seq=2,
        time=datetime.now(UTC),
        tenant="acme",
        actor="rogue",
        type="t",
        subject="s",
        payload={},
        prev_hash=head.hash,
        hash="",
    )
    rogue_hash = rogue.expected_hash()
    outcome: list[EventRecord | BaseException] = []

    def append() -> None:
        try:
            outcome.append(
                log.append(tenant="acme", actor="honest", type="t", subject="s", payload={})
            )
        except BaseException as exc:
            outcome.append(exc)

    with ledger.engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(
            insert(Event).values(
                seq=2,
                time=rogue.time,
                tenant_id="acme",
                actor="rogue",
                type="t",
                subject="s",
                payload={},
                prev_hash=head.hash,
                hash=rogue_hash,
            )
        )
        worker = threading.Thread(target=append)
        worker.start()
        _wait_until_blocked(ledger)
        assert outcome == []
        transaction.commit()
    worker.join(timeout=30)

    (appended,) = outcome
    assert isinstance(appended, EventRecord), appended
    assert (appended.seq, appended.prev_hash) == (3, rogue_hash)
    assert [r.actor for r in log.query()] == ["tester", "rogue", "honest"]
    assert log.verify().ok


def _wait_until_blocked(ledger: Ledger) -> None:
    """On PostgreSQL, wait until the append waits on the rogue's row lock."""
    if ledger.dialect != "postgresql":
        time.sleep(0.3)  # SQLite: the append waits in BEGIN IMMEDIATE's busy handler
        return
    deadline = time.monotonic() + 10
    with ledger.engine.connect() as probe:
        while time.monotonic() < deadline:
            waiting = probe.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
            ).scalar_one()
            if waiting:
                return
            probe.rollback()
            time.sleep(0.02)
    pytest.fail("the append never waited on the rogue insert")


# -- bad input -------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "tenant": "acme",
    "actor": "a",
    "type": "t",
    "subject": "s",
    "payload": {},
}


def _circular() -> dict[str, Any]:
    payload: dict[str, Any] = {}
    payload["self"] = payload
    return payload


BAD_APPENDS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"tenant": ""}, InvalidInputError, "tenant"),
    ({"tenant": "has space"}, InvalidInputError, "tenant"),
    ({"actor": ""}, InvalidInputError, "actor"),
    ({"actor": "x" * 201}, InvalidInputError, "actor"),
    ({"actor": 5}, InvalidInputError, "actor"),
    ({"type": " "}, InvalidInputError, "type"),
    ({"type": "has space"}, InvalidInputError, "type"),
    ({"type": "ingest.*"}, InvalidInputError, "type"),
    ({"subject": "   "}, InvalidInputError, "subject"),
    ({"subject": "x" * 501}, InvalidInputError, "subject"),
    ({"subject": "nul\x00byte"}, InvalidInputError, "subject"),
    ({"subject": "lone \ud800 surrogate"}, InvalidInputError, "subject"),
    ({"payload": ["not", "a", "dict"]}, InvalidInputError, "payload"),
    ({"payload": {"when": datetime.now(UTC)}}, InvalidInputError, r"payload\['when'\]"),
    ({"payload": {"x": [1.0, float("nan")]}}, InvalidInputError, r"payload\['x'\]\[1\]"),
    ({"payload": {"s": {1, 2}}}, InvalidInputError, "payload"),
    ({"payload": {"s": "\udc80"}}, InvalidInputError, "payload"),
    ({"payload": {"nested": {7: "int key"}}}, InvalidInputError, r"payload\['nested'\]"),
    ({"payload": {"deep": [[[{"x": b"bytes"}]]]}}, InvalidInputError, "bytes"),
    ({"payload": _circular()}, InvalidInputError, "payload"),
    ({"payload": {"big": "x" * 1_000_001}}, PayloadTooLargeError, "payload"),
]

BAD_QUERIES: list[tuple[dict[str, Any], str]] = [
    ({"limit": 0}, "limit"),
    ({"limit": 10_001}, "limit"),
    ({"since": datetime(2026, 1, 1)}, "since"),
    ({"until": "2026-01-01"}, "until"),
    ({"tenant": "bad tenant"}, "tenant"),
    ({"after_seq": -1}, "after_seq"),
    ({"type": "bad type.*"}, "type"),
]


def test_bad_input_is_refused_and_names_the_field(log: EventLog) -> None:
    """One test per backend, not one per case: each PostgreSQL database costs a second."""
    problems: list[str] = []
    for change, error, field in BAD_APPENDS:
        try:
            log.append(**{**GOOD, **change})
            problems.append(f"append accepted {change!r:.80}")
        except error as exc:
            if not re.search(field, str(exc)):
                problems.append(f"{change!r:.80}: message {exc} does not name {field}")
    for arguments, field in BAD_QUERIES:
        try:
            log.query(**arguments)
            problems.append(f"query accepted {arguments!r}")
        except InvalidInputError as exc:
            if field not in str(exc):
                problems.append(f"{arguments!r}: message {exc} does not name {field}")
    assert problems == []
    assert log.count() == 0
    with pytest.raises(InvalidInputError, match="batch"):
        log.verify(batch=0)


# -- the chain rules without a database ----------------------------------------------


def test_canonical_json_is_compact_sorted_and_keeps_unicode() -> None:
    assert canonical_json({"b": [1, {"d": 1, "c": 2}], "a": "ü"}) == (
        '{"a":"ü","b":[1,{"c":2,"d":1}]}'
    )
    with pytest.raises(ValueError):
        canonical_json({"x": float("inf")})


def test_chain_checker_reports_duplicates_and_reordering() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    records: list[EventRecord] = []
    prev = GENESIS_HASH
    for seq in (1, 2, 3):
        digest = event_hash(
            prev, seq=seq, time=moment, tenant="t", actor="a", type="x", subject="s", payload={}
        )
        records.append(EventRecord(seq, moment, "t", "a", "x", "s", {}, prev, digest))
        prev = digest
    checker = ChainChecker()
    assert [checker.feed(r) for r in (records[0], records[1], records[1])] == [True, True, False]
    report = checker.report()
    assert (report.ok, report.checked, report.first_broken_seq) == (False, 2, 2)
    assert report.reason is not None and "out of order" in report.reason
    assert not checker.feed(records[2])  # stays broken
