"""The HTTP API against the same work in process.

A fresh JANUS_HOME gets gensim's Lee corpus (50 news articles, one ``.txt``
each) ingested in process. Then:

1. **in process**: ``Retriever.search`` (hybrid, k=10) over a fixed list of
   queries, one at a time, before and after the server runs (the faster of
   the two is the baseline: the machine is shared and noisy);
2. **over HTTP**: ``janus serve`` on 127.0.0.1 (one process by default, as
   embedded stores require) is started on that home; ``POST /v1/search`` with the
   same queries, one client at a time (the like-for-like ratio) and with
   ``--clients`` concurrent clients (throughput); ``GET /healthz`` with the
   same concurrency (the server's floor: routing, JSON, metrics, no Janus).

Each concurrent client is a thread with its own keep-alive ``httpx.Client``,
so the client side costs a little of the same two cores the server uses;
numbers are for this machine and this load, read the ratio, not the
absolute values. Rate limits are set out of the way for the run.

``--workers N`` serves with N processes, which ``janus serve`` allows only
on server backends: give them with ``--slot SLOT=URL`` (repeatable; written
to the temporary home's ``janus.toml``), e.g. ``--slot vectors=http://…:6333
?collection=bench --slot graph=falkordb://… --slot relational=postgresql+psycopg://…
--slot objects=s3://… --slot cache=redis://…`` — point them at throwaway
stores, the corpus is ingested into them.

Run: ``python -m benchmarks.api [--clients 8] [--requests 400] [--workers N]
[--slot SLOT=URL ...] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from gensim.test.utils import datapath

from janus_stack.api.keys import KeyStore
from janus_stack.cli.serve import single_writer_slots
from janus_stack.config import SLOTS, load_settings
from janus_stack.context import Janus
from janus_stack.ingest.pipeline import IngestOptions, Ingestor
from janus_stack.retrieve import Retriever

QUERIES = [
    "Australian cricket team",
    "bushfires near Sydney",
    "Palestinian suicide bombing",
    "Taliban leaders in Afghanistan",
    "interest rates Reserve Bank",
    "Qantas airline strike",
    "asylum seekers detention",
    "United Nations Security Council",
    "Hollingworth Governor-General",
    "world economy recession",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, latencies: list[float], wall: float, clients: int) -> dict[str, Any]:
    return {
        "name": name,
        "clients": clients,
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


def prepare(home: Path) -> None:

    corpus = home / "corpus"
    corpus.mkdir()
    lines = Path(datapath("lee.cor")).read_text(encoding="latin-1").splitlines()
    for i, line in enumerate(line for line in lines if line.strip()):
        (corpus / f"lee-{i:02d}.txt").write_text(line + "\n", encoding="utf-8")
    settings = load_settings(environ={"JANUS_HOME": str(home)}, cwd=home)
    with Janus(settings) as janus:
        report = Ingestor(janus, janus.embedder, IngestOptions()).ingest(
            sorted(corpus.iterdir()), tenant="bench"
        )
    assert not report.failed, report.failed


def in_process(home: Path, rounds: int) -> dict[str, Any]:

    settings = load_settings(environ={"JANUS_HOME": str(home)}, cwd=home)
    with Janus(settings) as janus:
        retriever = Retriever(janus)
        for query in QUERIES:  # warm-up: models, caches, linker index
            retriever.search(query, k=10, tenant="bench")
        latencies = []
        start = time.perf_counter()
        for i in range(rounds):
            t = time.perf_counter()
            retriever.search(QUERIES[i % len(QUERIES)], k=10, tenant="bench")
            latencies.append(time.perf_counter() - t)
        wall = time.perf_counter() - start
    return summary("search in process", latencies, wall, 1)


def drive(
    name: str, clients: int, total: int, call: Callable[[httpx.Client, int], httpx.Response],
    base_url: str, token: str,
) -> dict[str, Any]:  # fmt: skip
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))
    errors: list[str] = []

    def worker() -> None:
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            call(client, 0)  # connect and warm up outside the measurement
            barrier.wait()
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t = time.perf_counter()
                response = call(client, i)
                elapsed = time.perf_counter() - t
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code} {response.text[:200]}")

    barrier = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{name}: {len(errors)} failed requests, first: {errors[0]}")
    return summary(name, latencies, wall, clients)


def search_call(client: httpx.Client, i: int) -> httpx.Response:
    return client.post("/v1/search", json={"query": QUERIES[i % len(QUERIES)], "k": 10})


def health_call(client: httpx.Client, _i: int) -> httpx.Response:
    return client.get("/healthz")


def write_slots(home: Path, slots: list[str]) -> None:
    """``--slot SLOT=URL`` options as the home's ``janus.toml``."""
    if not slots:
        return
    lines = ["[slots]"]
    for option in slots:
        slot, sep, url = option.partition("=")
        if not sep or slot not in SLOTS or not url:
            raise SystemExit(f"--slot {option!r}: expected SLOT=URL with SLOT one of {SLOTS}")
        lines.append(f"{slot} = {json.dumps(url)}")
    (home / "janus.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def serve(home: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JANUS_")}
    env["JANUS_HOME"] = str(home)
    janus = str(Path(sys.executable).with_name("janus"))
    with (home / "serve.log").open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [janus, "serve", "--port", str(port), "--workers", str(workers),
             "--key-rate", "1e6", "--key-burst", "1000000",
             "--tenant-rate", "1e6", "--tenant-burst", "1000000"],
            env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if process.poll() is not None:
            tail = (home / "serve.log").read_text(errors="replace")[-2000:]
            raise SystemExit(f"janus serve exited with {process.returncode}: {tail}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("janus serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument(
        "--workers", type=int, default=1, help="janus serve processes (server backends only)"
    )
    parser.add_argument(
        "--slot",
        action="append",
        default=[],
        metavar="SLOT=URL",
        help="a slot URL for the served home (repeatable), e.g. vectors=http://qdrant:6333",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.workers < 1:
        raise SystemExit("--workers must be at least 1")

    with tempfile.TemporaryDirectory(prefix="janus-bench-api-") as folder:
        home = Path(folder)
        write_slots(home, args.slot)
        settings = load_settings(environ={"JANUS_HOME": str(home)}, cwd=home)
        embedded = single_writer_slots(settings)
        if args.workers > 1 and embedded:
            raise SystemExit(
                f"--workers {args.workers} needs server backends; embedded: {', '.join(embedded)} "
                "(give them with --slot SLOT=URL)"
            )
        prepare(home)
        before = in_process(home, args.requests // 2)

        with Janus(load_settings(environ={"JANUS_HOME": str(home)}, cwd=home)) as janus:
            token = KeyStore(janus.ledger).create(tenant="bench", role="reader")[1]
        process, url = serve(home, args.workers)
        try:
            rows = [
                before,
                drive("search API", 1, args.requests // 2, search_call, url, token),
                drive("search API", args.clients, args.requests, search_call, url, token),
                drive("healthz", 1, args.requests * 2, health_call, url, token),
                drive("healthz", args.clients, args.requests * 5, health_call, url, token),
            ]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        # Measured again once the server let go of JANUS_HOME: the faster run is the baseline.
        after = in_process(home, args.requests // 2)
        rows[0] = max(before, after, key=lambda row: row["rps"])
    ratio = rows[1]["rps"] / rows[0]["rps"]
    if args.json:
        print(
            json.dumps(
                {"workers": args.workers, "rows": rows, "api_vs_in_process": ratio}, indent=2
            )
        )
        return
    backends = ", ".join(f"{slot}={settings.slot_url(slot).scheme}" for slot in SLOTS[:6])
    print(f"janus serve with {args.workers} worker(s); {backends}")
    print(f"{'path':<20}{'clients':>8}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p95 ms':>10}")
    for row in rows:
        print(
            f"{row['name']:<20}{row['clients']:>8}{row['requests']:>10}{row['rps']:>10.1f}"
            f"{row['p50_ms']:>10.2f}{row['p95_ms']:>10.2f}"
        )
    print(f"search over HTTP vs in process (one client, req/s): {ratio:.2f}")


if __name__ == "__main__":
    main()
