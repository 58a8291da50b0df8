from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from janus_stack.errors import HomeLockedError
from janus_stack.home_lock import HomeLock, owner_command, read_owner

HOLDER = """
import sys, time
from pathlib import Path
from janus_stack.home_lock import HomeLock
lock = HomeLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def _start_holder(home: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_is_refused_with_the_owner_pid(tmp_path: Path) -> None:
    holder = _start_holder(tmp_path)
    try:
        with pytest.raises(HomeLockedError) as info:
            HomeLock(tmp_path).acquire(timeout=0.3)
        assert info.value.owner_pid == holder.pid
        assert str(holder.pid) in str(info.value)
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_killed_owner_is_free_at_once(tmp_path: Path) -> None:
    holder = _start_holder(tmp_path)
    holder.kill()
    holder.wait()
    lock = HomeLock(tmp_path)
    lock.acquire(timeout=0)
    assert read_owner(tmp_path) == {"pid": os.getpid(), "command": owner_command(sys.argv)}
    lock.release()


def test_waiter_gets_the_lock_when_the_owner_exits(tmp_path: Path) -> None:
    holder = _start_holder(tmp_path)
    subprocess.Popen(["sh", "-c", f"sleep 0.5; kill {holder.pid}"])
    lock = HomeLock(tmp_path)
    lock.acquire(timeout=30)
    assert lock.held
    assert holder.wait(timeout=10) is not None
    lock.release()


def test_acquire_is_reentrant_within_a_process(tmp_path: Path) -> None:
    lock = HomeLock(tmp_path)
    lock.acquire()
    lock.acquire()
    lock.release()
    assert not lock.held


def test_owner_command_keeps_subcommands_and_drops_secrets() -> None:
    argv = ["/venv/bin/janus", "mcp", "--api-key", "jns_secret", "--transport", "http"]
    assert owner_command(argv) == "janus mcp"
    assert owner_command(["janus", "--api-key=jns_secret", "search", "x"]) == "janus"
