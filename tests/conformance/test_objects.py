"""The objects slot contract, asserted identically on every backend.

``store`` is parametrized over the embedded directory and S3 (moto's server
in its own process, one fresh bucket per test). Backend-specific behaviour
(URL validation, dead server, damaged files) follows the shared suite.
"""

from __future__ import annotations

import hashlib
import os
import random
import select
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port
from janus_stack.errors import (
    ClosedError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    SlotUnavailableError,
    SlotURLError,
)
from janus_stack.slots import objects
from janus_stack.slots.objects import ObjectInfo, ObjectStore, durability
from janus_stack.urls import SlotURL
from services import (  # noqa: F401 - fixtures
    S3_KEYS,
    drop_bucket,
    moto_client_fixture,
    moto_endpoint_fixture,
    raw_client,
    s3_url_fixture,
    start_moto,
    stop_moto,
)

BIG = 20 * 1024 * 1024


# -- the shared fixture --------------------------------------------------------


@pytest.fixture(params=["directory", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "directory":
        return f"file://{tmp_path}/objects"
    url: str = request.getfixturevalue("s3_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[ObjectStore]:
    with objects.open(store_url) as opened:
        yield opened


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def staged_files(store: ObjectStore) -> list[str]:
    return sorted(p.name for p in store.staging_dir.iterdir())


class Generated:
    """A binary stream of ``size`` pseudo-random bytes that never exists in memory whole.

    Records the largest read so a test can prove the store reads in chunks.
    """

    def __init__(self, size: int, seed: int = 7) -> None:
        self.left = size
        self.rng = random.Random(seed)
        self.digest = hashlib.sha256()
        self.largest_read = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise AssertionError("the store asked for the whole stream at once")
        self.largest_read = max(self.largest_read, n)
        count = min(n, self.left)
        self.left -= count
        chunk = self.rng.randbytes(count)
        self.digest.update(chunk)
        return chunk


# -- the contract, on every backend --------------------------------------------


def test_round_trip(store: ObjectStore) -> None:
    data = b"Apollo 8 launched on December 21, 1968.\n" * 100
    before = datetime.now(UTC)
    info = store.put(
        data,
        tenant="acme",
        content_type="text/plain; charset=utf-8",
        metadata={"filename": "apollo 8.txt", "note": "Grüße  %20 ✓"},
    )
    assert info == ObjectInfo(
        key=f"acme/{sha(data)}",
        tenant="acme",
        sha256=sha(data),
        size=len(data),
        content_type="text/plain; charset=utf-8",
        metadata={"filename": "apollo 8.txt", "note": "Grüße  %20 ✓"},
        created_at=info.created_at,
    )
    assert info.created_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= info.created_at <= datetime.now(UTC)
    assert store.head(info.key) == info
    assert store.exists(info.key)
    assert store.read_bytes(info.key) == data
    with store.get(info.key) as stream:
        assert stream.read(9) == b"Apollo 8 "
        assert stream.read() == data[9:]
        assert stream.read() == b""


def test_empty_object(store: ObjectStore) -> None:
    info = store.put(b"", tenant="acme")
    assert info.size == 0
    assert info.content_type == "application/octet-stream"
    assert info.metadata == {}
    assert store.read_bytes(info.key) == b""
    assert store.head(info.key) == info


def test_large_object_streams_both_ways(store: ObjectStore) -> None:
    source = Generated(BIG)
    tracemalloc.start()
    try:
        info = store.put(source, tenant="acme", content_type="application/pdf")
        put_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        digest = hashlib.sha256()
        with store.get(info.key) as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        get_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.size == BIG
    assert info.sha256 == source.digest.hexdigest() == digest.hexdigest()
    assert source.largest_read <= 8 << 20
    assert put_peak < 8 << 20, f"put held {put_peak} bytes for a {BIG}-byte object"
    assert get_peak < 8 << 20, f"get held {get_peak} bytes for a {BIG}-byte object"
    assert store.head(info.key).size == BIG
    assert staged_files(store) == []


def test_put_is_idempotent(store: ObjectStore) -> None:
    data = os.urandom(4096)
    first = store.put(data, tenant="acme", content_type="image/png", metadata={"v": "1"})
    time.sleep(0.01)
    again = store.put(data, tenant="acme", content_type="text/plain", metadata={"v": "2"})
    assert again == first
    assert store.head(first.key) == first
    assert [i.key for i in store.list(tenant="acme")] == [first.key]
    assert staged_files(store) == []


def test_deferred_put_is_readable_at_once_and_sync_settles_it(store: ObjectStore) -> None:
    data = os.urandom(2048)
    info = store.put(data, tenant="acme", durable=False)
    assert store.read_bytes(info.key) == data
    assert store.head(info.key) == info
    assert store.put(data, tenant="acme", durable=False) == info
    store.sync()
    store.sync()  # nothing pending: a no-op
    assert store.read_bytes(info.key) == data
    assert staged_files(store) == []


def test_head_exists_delete(store: ObjectStore) -> None:
    info = store.put(b"to be deleted", tenant="acme")
    keep = store.put(b"to be kept", tenant="acme")
    assert store.delete(info.key) is True
    assert store.delete(info.key) is False
    assert not store.exists(info.key)
    with pytest.raises(NotFoundError, match=info.key):
        store.head(info.key)
    assert store.read_bytes(keep.key) == b"to be kept"
    assert [i.key for i in store.list(tenant="acme")] == [keep.key]
    again = store.put(b"to be deleted", tenant="acme")
    assert again.key == info.key
    assert store.read_bytes(again.key) == b"to be deleted"


def test_list_by_prefix(store: ObjectStore) -> None:
    infos = [store.put(f"object {n}".encode(), tenant="acme") for n in range(24)]
    everything = list(store.list(tenant="acme"))
    assert everything == sorted(infos, key=lambda i: i.key)
    for prefix in ("", "a", "3f", infos[0].sha256[:3], infos[0].sha256[:5], infos[5].sha256):
        expected = sorted((i for i in infos if i.sha256.startswith(prefix)), key=lambda i: i.key)
        assert list(store.list(prefix, tenant="acme")) == expected, prefix
    assert list(store.list(infos[5].sha256, tenant="acme")) == [infos[5]]
    assert list(store.list(tenant="nobody")) == []


def test_list_separates_tenants(store: ObjectStore) -> None:
    data = b"the same bytes for two tenants"
    a = store.put(data, tenant="tenant-a")
    b = store.put(data, tenant="tenant-b", content_type="text/plain")
    assert a.sha256 == b.sha256
    assert a.key != b.key
    assert [i.key for i in store.list(tenant="tenant-a")] == [a.key]
    assert [i.key for i in store.list(tenant="tenant-b")] == [b.key]
    assert store.delete(a.key)
    assert store.head(b.key) == b
    assert store.read_bytes(b.key) == data
    assert list(store.list(tenant="tenant-a")) == []


def test_missing_key_is_not_found(store: ObjectStore) -> None:
    key = f"acme/{sha(b'never stored')}"
    for call in (store.head, store.read_bytes):
        with pytest.raises(NotFoundError, match=key):
            call(key)
    with pytest.raises(NotFoundError, match=key), store.get(key):
        pass
    assert store.exists(key) is False
    assert store.delete(key) is False


@pytest.mark.parametrize(
    "key",
    [
        "",
        "acme",
        "acme/abc",
        f"acme/{'A' * 64}",
        f"acme/{'g' * 64}",
        f"acme/{'a' * 63}",
        f"../acme/{'a' * 64}",
        f"acme/x/{'a' * 64}",
        f"-acme/{'a' * 64}",
        f"/{'a' * 64}",
    ],
)
def test_malformed_key_is_invalid_input(store: ObjectStore, key: str) -> None:
    for call in (store.head, store.exists, store.delete, store.read_bytes):
        with pytest.raises(InvalidInputError, match="malformed key"):
            call(key)
    with pytest.raises(InvalidInputError, match="malformed key"), store.get(key):
        pass


def test_invalid_input_to_put_and_list(store: ObjectStore) -> None:
    with pytest.raises(InvalidInputError, match="tenant"):
        store.put(b"x", tenant="no/slash")
    with pytest.raises(InvalidInputError, match="tenant"):
        store.put(b"x", tenant="t" * 65)
    with pytest.raises(InvalidInputError, match="content_type"):
        store.put(b"x", tenant="acme", content_type="")
    with pytest.raises(InvalidInputError, match="metadata"):
        store.put(b"x", tenant="acme", metadata={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match="limit is 1536"):
        store.put(b"x", tenant="acme", metadata={"big": "v" * 2000})
    with pytest.raises(InvalidInputError, match="binary mode"), Path(__file__).open() as text:
        store.put(text, tenant="acme")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="bytes or a binary stream"):
        store.put("text", tenant="acme")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="prefix"):
        list(store.list("XYZ", tenant="acme"))
    with pytest.raises(InvalidInputError, match="tenant"):
        list(store.list(tenant="a b"))
    assert list(store.list(tenant="acme")) == []
    assert staged_files(store) == []


def test_oversized_put_stores_nothing(store: ObjectStore) -> None:
    data = os.urandom(1001)
    with pytest.raises(PayloadTooLargeError, match="max_bytes=1000"):
        store.put(data, tenant="acme", max_bytes=1000)
    source = Generated(BIG)
    with pytest.raises(PayloadTooLargeError, match="max_bytes=1048576"):
        store.put(source, tenant="acme", max_bytes=1 << 20)
    assert source.left > BIG - (4 << 20), "the store read far past the limit"
    assert not store.exists(f"acme/{sha(data)}")
    assert list(store.list(tenant="acme")) == []
    assert staged_files(store) == []
    assert store.put(data[:1000], tenant="acme", max_bytes=1000).size == 1000


def test_use_after_close_is_closed_error(store_url: str) -> None:
    store = objects.open(store_url)
    key = f"acme/{sha(b'x')}"
    with pytest.raises(ClosedError):
        store.put(b"x", tenant="acme")
    with store:
        key = store.put(b"x", tenant="acme").key
    assert not store.is_open
    for call in (store.head, store.exists, store.delete, store.read_bytes):
        with pytest.raises(ClosedError):
            call(key)
    with pytest.raises(ClosedError):
        store.put(b"y", tenant="acme")
    with pytest.raises(ClosedError):
        store.list(tenant="acme")
    with pytest.raises(ClosedError), store.get(key):
        pass
    with pytest.raises(ClosedError):
        store.probe()
    with store:
        assert store.read_bytes(key) == b"x"


def test_crashed_put_leaves_no_object(store: ObjectStore, store_url: str) -> None:
    """kill -9 in the middle of a put: the staging file stays, no object appears."""
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_PUT, store_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 30)
        line = child.stdout.readline().strip() if ready else ""
        if line != "streaming":
            child.kill()
            _, err = child.communicate()
            pytest.fail(f"the crashing put never started streaming: {err.strip()[-500:]}")
        child.kill()
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    leftovers = staged_files(store)
    assert len(leftovers) == 1
    assert (store.staging_dir / leftovers[0]).stat().st_size >= 1 << 20
    assert list(store.list(tenant="crash")) == []
    info = store.put(b"after the crash", tenant="crash")
    assert list(store.list(tenant="crash")) == [info]
    # A leftover younger than a day may belong to a live put elsewhere; an old one is swept.
    store.close()
    store.open()
    assert staged_files(store) == leftovers
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(store.staging_dir / leftovers[0], (day_ago, day_ago))
    store.close()
    store.open()
    assert staged_files(store) == []
    assert list(store.list(tenant="crash")) == [info]


CRASHING_PUT = """
import sys, time
from janus_stack.slots import objects

class Stalls:
    sent = 0
    def read(self, n=-1):
        if self.sent >= 2 << 20:
            print("streaming", flush=True)
            time.sleep(120)
        self.sent += 1 << 20
        return b"x" * (1 << 20)

with objects.open(sys.argv[1]) as store:
    store.put(Stalls(), tenant="crash")
"""


def test_probe_round_trips_and_cleans_up(store: ObjectStore) -> None:
    store.probe()
    store.probe()
    assert list(store.list(tenant="_doctor")) == []
    assert staged_files(store) == []


def test_unknown_scheme_lists_accepted_schemes() -> None:
    with pytest.raises(SlotURLError) as caught:
        objects.open("ftp://files.example/objects")
    message = str(caught.value)
    assert "'ftp'" in message
    for scheme in objects.ACCEPTED_SCHEMES:
        assert f"{scheme}://" in message
    assert set(objects.ACCEPTED_SCHEMES) == {"file", "s3"}


def test_backends_agree(tmp_path: Path, s3_url: str) -> None:
    """The embedded and the server backend give the same answers for the same calls."""
    data = [b"alpha", b"beta" * 1000, os.urandom(70_000)]
    answers = []
    for url in (f"file://{tmp_path}/objects", s3_url):
        with objects.open(url) as store:
            infos = [
                store.put(d, tenant="acme", content_type="text/plain", metadata={"n": str(i)})
                for i, d in enumerate(data)
            ]
            listed = list(store.list(tenant="acme"))
            answers.append(
                [
                    (i.key, i.sha256, i.size, i.content_type, i.metadata, i.tenant)
                    for i in sorted(infos, key=lambda i: i.key)
                ]
            )
            assert [(i.key, i.metadata) for i in listed] == [(a[0], a[4]) for a in answers[-1]]
            assert [store.read_bytes(i.key) for i in infos] == data
    assert answers[0] == answers[1]


# -- backend-specific ----------------------------------------------------------


def test_directory_rejects_query_and_unwritable_root(tmp_path: Path) -> None:
    with pytest.raises(SlotURLError, match="no query"):
        objects.open(f"file://{tmp_path}/objects?fsync=0")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = objects.open(f"file://{blocker}/objects")
    with pytest.raises(SlotUnavailableError, match="directory") as caught:
        store.open()
    assert str(blocker) in str(caught.value)


def test_directory_damaged_object_is_integrity_error(tmp_path: Path) -> None:
    with objects.open(f"file://{tmp_path}/objects") as store:
        info = store.put(b"precious bytes" * 100, tenant="acme")
        path = store.root / "acme" / info.sha256[:2] / info.sha256  # type: ignore[attr-defined]
        assert path.read_bytes().startswith(b"precious bytes")
        with path.open("r+b") as damaged:
            damaged.truncate(path.stat().st_size - 3)
        with pytest.raises(IntegrityError, match=info.key):
            store.head(info.key)
        with pytest.raises(IntegrityError, match=info.key):
            store.read_bytes(info.key)
        # Putting the same bytes again (a re-ingest) replaces the damaged copy.
        healed = store.put(b"precious bytes" * 100, tenant="acme", durable=False)
        assert (healed.key, healed.size) == (info.key, info.size)
        assert store.read_bytes(info.key) == b"precious bytes" * 100


def test_directory_sync_without_syncfs_fsyncs_each_deferred_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where libc has no ``syncfs`` (not Linux) each deferred object and folder is fsynced."""
    monkeypatch.setattr(durability, "_syncfs", lambda: None)
    with objects.open(f"file://{tmp_path}/objects") as store:
        kept = store.put(b"kept" * 100, tenant="acme", durable=False)
        gone = store.put(b"gone" * 100, tenant="acme", durable=False)
        store.delete(gone.key)  # deleted before the sync: nothing left to make durable
        store.sync()
        assert store._unsynced == set()  # type: ignore[attr-defined]
        assert store.read_bytes(kept.key) == b"kept" * 100


def test_s3_creates_missing_bucket(s3_url: str, moto_client: Any) -> None:
    bucket = SlotURL.parse("objects", s3_url).without_query().removeprefix("s3://")
    with pytest.raises(moto_client.exceptions.ClientError):
        moto_client.head_bucket(Bucket=bucket)
    with objects.open(s3_url) as store:
        info = store.put(b"x", tenant="acme", content_type="text/plain")
    moto_client.head_bucket(Bucket=bucket)
    stored = moto_client.head_object(Bucket=bucket, Key=info.key)
    assert stored["Metadata"]["janus-sha256"] == info.sha256
    assert stored["ContentType"] == "text/plain"
    with objects.open(s3_url) as again:
        assert again.read_bytes(info.key) == b"x"


def test_s3_url_validation(moto_endpoint: str) -> None:
    with pytest.raises(SlotURLError, match="unknown parameter"):
        objects.open(f"s3://bucket1?endpoint={moto_endpoint}&colour=blue")
    with pytest.raises(SlotURLError, match="bucket name"):
        objects.open(f"s3://Bad_Bucket?endpoint={moto_endpoint}")
    with pytest.raises(SlotURLError, match="both access_key and secret_key"):
        objects.open(f"s3://bucket1?endpoint={moto_endpoint}&access_key=x")
    with pytest.raises(SlotURLError, match="addressing"):
        objects.open(f"s3://bucket1?endpoint={moto_endpoint}&addressing=sideways")


def test_s3_key_prefix_keeps_stores_apart(s3_url: str) -> None:
    base, _, query = s3_url.partition("?")
    with (
        objects.open(f"{base}/one?{query}") as one,
        objects.open(f"{base}/two?{query}") as two,
    ):
        info = one.put(b"only in one", tenant="acme")
        assert two.exists(info.key) is False
        assert list(two.list(tenant="acme")) == []
        assert [i.key for i in one.list(tenant="acme")] == [info.key]


def test_s3_dead_server_is_slot_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JANUS_TEST_OBJECTS_SECRET", "do-not-print-me")
    port = free_port()
    closed = SlotURL.parse(
        "objects",
        f"s3://bucket1?endpoint=http://127.0.0.1:{port}&access_key=ak"
        f"&secret_key=env:JANUS_TEST_OBJECTS_SECRET&staging={tmp_path}",
    )
    with pytest.raises(SlotUnavailableError) as caught:
        objects.open(closed).open()
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "env:JANUS_TEST_OBJECTS_SECRET" in str(caught.value)
    assert "do-not-print-me" not in str(caught.value)

    process, endpoint = start_moto()
    url = (
        f"s3://bucket1?endpoint={endpoint}&access_key=ak"
        f"&secret_key=env:JANUS_TEST_OBJECTS_SECRET&staging={tmp_path}"
    )
    try:
        store = objects.open(url).open()
        info = store.put(b"before the crash", tenant="acme")
    finally:
        process.kill()
        process.wait()
    for call in (
        lambda: store.head(info.key),
        lambda: store.read_bytes(info.key),
        lambda: store.put(b"after the crash", tenant="acme"),
        lambda: list(store.list(tenant="acme")),
    ):
        with pytest.raises(SlotUnavailableError) as caught:
            call()
        message = str(caught.value)
        assert endpoint.removeprefix("http://") in message
        assert "do-not-print-me" not in message
        assert "could not connect" in message.lower()
    assert staged_files(store) == []
    store.close()


def test_real_s3_server_when_configured(tmp_path: Path) -> None:
    """Opt-in: JANUS_TEST_S3_URL=s3://bucket?endpoint=http://minio:9000&access_key=...&secret_key=..."""
    raw = os.environ.get("JANUS_TEST_S3_URL")
    if not raw:
        pytest.skip("JANUS_TEST_S3_URL is not set: set it to an s3:// objects URL to test MinIO/S3")
    tenant = f"janus-test-{uuid.uuid4().hex[:10]}"
    with objects.open(SlotURL.parse("objects", raw)) as store:
        try:
            small = store.put(b"hello MinIO", tenant=tenant, metadata={"note": "Grüße"})
            assert store.put(b"hello MinIO", tenant=tenant) == small
            assert store.head(small.key) == small
            source = Generated(BIG)
            big = store.put(source, tenant=tenant)
            assert big.sha256 == source.digest.hexdigest()
            digest = hashlib.sha256()
            with store.get(big.key) as stream:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
            assert digest.hexdigest() == big.sha256
            assert [i.key for i in store.list(tenant=tenant)] == sorted([small.key, big.key])
            store.probe()
        finally:
            for info in list(store.list(tenant=tenant)):
                store.delete(info.key)
        assert list(store.list(tenant=tenant)) == []
