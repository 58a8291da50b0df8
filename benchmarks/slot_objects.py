"""Objects slot: Janus vs. the raw way, for puts and gets of 64 KB objects.

The raw baselines do the storing with nothing around it: for ``file://`` a
plain write + fsync + rename (and, in a second row, the same plus the
folder fsync that makes the rename itself durable, which Janus also does);
for ``s3://`` boto3's ``put_object``/``get_object`` with a default client on
the same moto server (in its own process, like a real MinIO). Janus adds
validation, sha256 hashing, streaming through a staging file, the
idempotency check and error translation.

Every put round writes fresh bytes, so no round measures the no-op path of
an idempotent re-put. Janus and raw rounds alternate and the best of each
counts, so a busy machine slows both sides alike.
Run: ``python -m benchmarks.slot_objects``.
"""

from __future__ import annotations

import os
import pathlib
import select
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import boto3

from benchmarks._common import BenchRow, ops_per_second
from janus_stack.slots import objects
from janus_stack.urls import SlotURL

COUNT = 200
SIZE = 64 * 1024
REPEAT = 5
LABEL = "64 KB"
SERVER_SCRIPT = pathlib.Path(__file__).parents[1] / "tests" / "conformance" / "_s3_server.py"


def _timed_puts(put: Callable[[int, bytes], object]) -> Callable[[], None]:
    """A workload that puts one fresh round of COUNT objects each time it runs."""
    rounds = [[os.urandom(SIZE) for _ in range(COUNT)] for _ in range(REPEAT)]
    counter = iter(range(REPEAT * COUNT))

    def work() -> None:
        for data in rounds.pop():
            put(next(counter), data)

    return work


def _paired(
    janus: Callable[[], None], raw: Callable[[], None], operations: int
) -> tuple[float, float]:
    """Best ops/s of each side over REPEAT alternating rounds."""
    best_janus = best_raw = 0.0
    for _ in range(REPEAT):
        best_janus = max(best_janus, ops_per_second(janus, operations, repeat=1))
        best_raw = max(best_raw, ops_per_second(raw, operations, repeat=1))
    return best_janus, best_raw


def _fsync_dir(folder: pathlib.Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _raw_file_put(folder: pathlib.Path, *, durable: bool) -> Callable[[int, bytes], None]:
    def put(number: int, data: bytes) -> None:
        temporary = folder / f".tmp-{number}"
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, folder / f"object-{number}")
        if durable:
            _fsync_dir(folder)

    return put


def _directory_rows(workdir: pathlib.Path) -> list[BenchRow]:
    raw_dir = workdir / "raw"
    durable_dir = workdir / "raw-durable"
    raw_dir.mkdir()
    durable_dir.mkdir()
    rows: list[BenchRow] = []
    with objects.open(SlotURL.parse("objects", f"file://{workdir}/janus")) as store:
        keys: list[str] = []

        def janus_put(_: int, data: bytes) -> None:
            keys.append(store.put(data, tenant="bench").key)

        janus_work = _timed_puts(janus_put)
        raw_work = _timed_puts(_raw_file_put(raw_dir, durable=False))
        durable_work = _timed_puts(_raw_file_put(durable_dir, durable=True))
        janus_put_ops = raw_put_ops = durable_put_ops = 0.0
        for _ in range(REPEAT):  # three-way alternation: the same load on every side
            janus_put_ops = max(janus_put_ops, ops_per_second(janus_work, COUNT, repeat=1))
            raw_put_ops = max(raw_put_ops, ops_per_second(raw_work, COUNT, repeat=1))
            durable_put_ops = max(durable_put_ops, ops_per_second(durable_work, COUNT, repeat=1))
        rows.append(BenchRow("objects", "directory", f"put {LABEL}", 1, janus_put_ops, raw_put_ops))
        rows.append(
            BenchRow(
                "objects",
                "directory",
                f"put {LABEL} (raw + dir fsync)",
                1,
                janus_put_ops,
                durable_put_ops,
            )
        )
        janus_keys = keys[:COUNT]
        raw_paths = sorted(raw_dir.glob("object-*"))[:COUNT]

        def janus_get() -> None:
            for key in janus_keys:
                store.read_bytes(key)

        def raw_get() -> None:
            for path in raw_paths:
                with path.open("rb") as stream:
                    stream.read()

        rows.append(
            BenchRow("objects", "directory", f"get {LABEL}", 1, *_paired(janus_get, raw_get, COUNT))
        )
    return rows


@contextmanager
def _moto_server() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        port = process.stdout.readline().strip() if ready else ""
        if not port.isdigit():
            raise RuntimeError("moto's S3 server did not start (pip install 'moto[server]')")
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _s3_rows(workdir: pathlib.Path) -> list[BenchRow]:
    with _moto_server() as endpoint:
        keys_query = "access_key=bench&secret_key=bench-secret"
        url = f"s3://janus-bench?endpoint={endpoint}&{keys_query}&staging={workdir}/staging"
        raw = boto3.session.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench-secret"
        ).client("s3", endpoint_url=endpoint, region_name="us-east-1")
        raw.create_bucket(Bucket="raw-bench")
        prefix = uuid.uuid4().hex[:8]
        with objects.open(SlotURL.parse("objects", url)) as store:
            keys: list[str] = []

            def janus_put(_: int, data: bytes) -> None:
                keys.append(store.put(data, tenant="bench").key)

            def raw_put(number: int, data: bytes) -> None:
                raw.put_object(Bucket="raw-bench", Key=f"{prefix}/{number}", Body=data)

            put_ops = _paired(_timed_puts(janus_put), _timed_puts(raw_put), COUNT)
            janus_keys = keys[:COUNT]

            def janus_get() -> None:
                for key in janus_keys:
                    store.read_bytes(key)

            def raw_get() -> None:
                for number in range(COUNT):
                    raw.get_object(Bucket="raw-bench", Key=f"{prefix}/{number}")["Body"].read()

            rows = [
                BenchRow("objects", "s3", f"put {LABEL}", 1, *put_ops),
                BenchRow("objects", "s3", f"get {LABEL}", 1, *_paired(janus_get, raw_get, COUNT)),
            ]
        raw.close()
    return rows


def run(workdir: pathlib.Path) -> list[BenchRow]:
    """Both backends: the embedded directory under ``workdir`` and S3 on a moto server."""
    (workdir / "directory").mkdir()
    (workdir / "s3").mkdir()
    return _directory_rows(workdir / "directory") + _s3_rows(workdir / "s3")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="janus-bench-objects-") as folder:
        for row in run(pathlib.Path(folder)):
            print(
                f"{row.slot:8} {row.backend:10} {row.operation:30} "
                f"janus {row.janus_ops_s:9,.0f}/s  raw {row.raw_ops_s:9,.0f}/s  "
                f"ratio {row.ratio:.2f}"
            )
