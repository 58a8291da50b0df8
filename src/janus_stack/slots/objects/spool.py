"""Taking a put's bytes in: hashed as they arrive, held in memory, staged on disk when large.

The slot hashes and bounds the content before a backend sees it, so a
backend only commits what :class:`Spool` hands over: the bytes themselves
up to ``SPOOL_BYTES``, else a staging file in the slot's staging folder.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from janus_stack.errors import InvalidInputError, PayloadTooLargeError

CHUNK_BYTES = 1 << 20
# Up to this size a put stays in memory until the backend commits it: a small
# object is then written once (or sent straight from memory), never staged twice.
SPOOL_BYTES = 1 << 20
STAGING_PREFIX = ".janus-stage-"


class Readable(Protocol):
    """What ``put`` needs of a stream: ``read(n)`` returning at most n bytes, b"" at the end."""

    def read(self, size: int = ..., /) -> bytes: ...


def _chunks(data: bytes | Readable, tenant: str) -> Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    read = getattr(data, "read", None)
    if read is None:
        raise InvalidInputError(
            f"objects slot: put for tenant {tenant!r} needs bytes or a binary stream, "
            f"not {type(data).__name__}"
        )
    while chunk := read(CHUNK_BYTES):
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise InvalidInputError(
                f"objects slot: put for tenant {tenant!r} got {type(chunk).__name__} from "
                "read(); open the file in binary mode ('rb')"
            )
        yield bytes(chunk)


class Spool:
    """Holds chunks in memory up to ``SPOOL_BYTES``, then moves them to a staging file."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._held: list[bytes] = []
        self._held_size = 0
        self._fd: int | None = None
        self._path: Path | None = None
        self.digest = hashlib.sha256()
        self.size = 0

    def fill(self, data: bytes | Readable, tenant: str, max_bytes: int | None) -> None:
        """Take ``data`` in chunks, hashing it and stopping as soon as it passes ``max_bytes``."""
        for chunk in _chunks(data, tenant):
            self.size += len(chunk)
            if max_bytes is not None and self.size > max_bytes:
                raise PayloadTooLargeError(
                    f"objects slot: object for tenant {tenant!r} exceeds max_bytes={max_bytes} "
                    f"(read {self.size} bytes so far); nothing stored"
                )
            self.digest.update(chunk)
            self.write(chunk)

    def write(self, chunk: bytes) -> None:
        fd = self._fd
        if fd is None:
            if self._held_size + len(chunk) <= SPOOL_BYTES:
                self._held.append(chunk)
                self._held_size += len(chunk)
                return
            fd, name = tempfile.mkstemp(prefix=STAGING_PREFIX, dir=self._directory)
            self._fd, self._path = fd, Path(name)
            for held in self._held:
                write_all(fd, held)
            self._held = []
        write_all(fd, chunk)

    def finish(self) -> bytes | Path:
        if self._fd is None or self._path is None:
            return self._held[0] if len(self._held) == 1 else b"".join(self._held)
        os.close(self._fd)
        self._fd = None
        return self._path

    def discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)


def write_all(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        written = os.write(fd, view)
        view = view[written:]
