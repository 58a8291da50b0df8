"""Making files durable on a local filesystem: a folder's fsync, and many files' at once.

The embedded objects backend needs both: one put fsyncs its file and its
folder, and a batch of puts made without waiting for the disk is made
durable together. Linux's ``syncfs`` commits a whole filesystem in one call
(one journal commit where an fsync per file would each wait for their own);
elsewhere each file and folder is fsynced once.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
from collections.abc import Callable


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs(fd)`` (Linux), or ``None`` where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return function


def sync_paths(root: str, paths: set[str]) -> None:
    """Make ``paths`` (files under ``root``, one filesystem) and their folders durable."""
    syncfs = _syncfs()
    if syncfs is not None:
        fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            if syncfs(fd) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"syncfs({root}): {os.strerror(code)}")
        finally:
            os.close(fd)
        return
    for path in sorted(paths):
        with contextlib.suppress(FileNotFoundError):  # deleted since: nothing to keep
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for folder in sorted({os.path.dirname(path) for path in paths}):
        fsync_dir(folder)


def fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
