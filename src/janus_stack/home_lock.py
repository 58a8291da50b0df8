"""One owner per JANUS_HOME.

Qdrant Edge and ladybug allow one writing process per data folder; a second
process opening them could fail half-way or, worse, corrupt a store. The
process that opens an embedded single-writer engine first takes an
exclusive ``flock`` on ``JANUS_HOME/janus.lock`` and records its PID and
command there, so a second ``janus`` command can wait for it or say exactly
who holds it. The kernel drops the lock when the owner dies, even on
``kill -9``: a stale lock file never blocks anyone.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import IO

from janus_stack.errors import HomeLockedError

LOCK_FILE = "janus.lock"


def read_owner(home: Path) -> dict[str, object] | None:
    """The owner record written by the current holder, if any."""
    try:
        text = (home / LOCK_FILE).read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        owner = json.loads(text)
    except json.JSONDecodeError:
        return None
    return owner if isinstance(owner, dict) else None


class HomeLock:
    """An exclusive, process-lifetime lock on a JANUS_HOME folder."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._handle: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock, waiting up to ``timeout`` seconds for its owner to finish."""
        if self._handle is not None:
            return
        self.home.mkdir(parents=True, exist_ok=True)
        handle = (self.home / LOCK_FILE).open("a+", encoding="utf-8")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    raise self._locked_error() from None
                time.sleep(0.1)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": owner_command(sys.argv)}))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        handle.seek(0)
        handle.truncate()
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()

    def _locked_error(self) -> HomeLockedError:
        owner = read_owner(self.home) or {}
        pid = owner.get("pid")
        owner_pid = pid if isinstance(pid, int) else None
        command = owner.get("command") or "unknown command"
        who = f"process {owner_pid} ({command})" if owner_pid else "another process"
        return HomeLockedError(
            f"JANUS_HOME {self.home} is in use by {who}; its embedded stores allow one "
            "writing process at a time",
            owner_pid=owner_pid,
            hint="wait for it to finish (--lock-timeout SECONDS waits), stop it, "
            "or point this command at another JANUS_HOME",
        )


def owner_command(argv: list[str]) -> str:
    """The program and its subcommands, without options or their values.

    The lock file is readable by anyone who can read ``JANUS_HOME``; options
    may carry secrets (``--api-key``), so only the words before the first
    option are recorded — enough to tell the user which command holds the home.
    """
    words: list[str] = []
    for arg in argv:
        if arg.startswith("-"):
            break
        words.append(Path(arg).name if not words else arg)
    return " ".join(words)
