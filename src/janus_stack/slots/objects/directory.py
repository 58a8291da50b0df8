"""The embedded objects backend: a content-addressed folder tree.

Layout::

    <root>/<tenant>/<ab>/<sha256>     one file per object, sharded by its first byte
    <root>/.staging/.janus-stage-*    puts in progress (or crashed)

Each object file is the raw bytes followed by a trailer holding the
object's info, so bytes and info become visible in one atomic step::

    <bytes> <info as UTF-8 JSON> <JSON length: 4 bytes big-endian> b"JANUSOB1"

A sidecar file would need its own fsync; measured on ext4 it made a 64 KB
put ~1.6x slower than the single file. A put writes into ``.staging`` (same
filesystem: small objects straight from memory, large ones were streamed
there by the base class), appends the trailer, fsyncs, hard-links the file
to its final name (``link`` fails if the name exists, so a concurrent
identical put cannot clobber the first one's info) and fsyncs the folder. A
crash leaves at most a staging file, which is never listed and is swept
after a day. A put with ``durable=False`` (ingest) skips both fsyncs and
leaves them to ``sync``: one ``syncfs`` for a whole batch of puts; a copy
that a power loss damaged before its sync is replaced by the next put of
the same bytes (nothing recorded it yet). Readers
see only ``<bytes>``: their stream ends before the trailer. One shard
level (256 folders per tenant) keeps folders small up to millions of
objects without paying a second folder creation and fsync on most puts of
a young store.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

from janus_stack.errors import IntegrityError, NotFoundError, SlotURLError
from janus_stack.slots.objects import ObjectInfo, ObjectStore
from janus_stack.slots.objects.durability import fsync_dir, sync_paths
from janus_stack.slots.objects.spool import STAGING_PREFIX, write_all
from janus_stack.urls import SlotURL

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAGIC = b"JANUSOB1"
_FOOTER = 4 + len(MAGIC)
_TAIL_READ = 4096
_HEX = frozenset("0123456789abcdef")
# Filesystems without hard links fall back to rename (last identical put wins).
_NO_LINK = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK})


class DirectoryObjects(ObjectStore):
    """Objects as files under one folder; safe for several threads and processes."""

    backend: ClassVar[str] = "directory"
    embedded: ClassVar[bool] = True
    hint: ClassVar[str] = "check that the folder exists or can be created and is writable"

    def __init__(self, url: SlotURL) -> None:
        super().__init__(url)
        if url.query:
            raise SlotURLError(
                f"objects slot: {url.redacted!r}: the file:// backend takes no query "
                f"parameters (got {', '.join(sorted(url.query))})"
            )
        self._root = url.path
        self._root_text = str(self._root)
        # Objects published without their fsyncs, made durable together by `_sync`.
        self._unsynced: set[str] = set()
        self._unsynced_lock = threading.Lock()

    @property
    def root(self) -> Path:
        return self._root

    def _open(self) -> None:
        root = self._root.expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK | os.X_OK):
            raise PermissionError(f"{root} is not writable")
        self._root = root
        self._root_text = str(root)
        self._prepare_staging(root / ".staging")

    def _close(self) -> None:
        """Nothing is held open between calls."""

    # -- paths (plain strings: pathlib costs more than the read of a small object)

    def _path(self, key: str) -> str:
        tenant, digest = key.split("/")
        return os.path.join(self._root_text, tenant, digest[:2], digest)

    def _ensure_shard(self, shard: str) -> None:
        """Create a missing shard folder durably (each new entry needs its parent fsynced).

        A new tenant gets all 256 shards at once, for one fsync instead of
        one per put until the tenant has a few hundred objects.
        """
        if os.path.isdir(shard):
            return
        tenant_dir = os.path.dirname(shard)
        if not os.path.isdir(tenant_dir):
            with contextlib.suppress(FileExistsError):
                os.mkdir(tenant_dir)
                fsync_dir(self._root_text)
            for byte in range(256):
                with contextlib.suppress(FileExistsError):
                    os.mkdir(os.path.join(tenant_dir, f"{byte:02x}"))
        else:
            with contextlib.suppress(FileExistsError):
                os.mkdir(shard)
        fsync_dir(tenant_dir)

    # -- the core --------------------------------------------------------------

    def _commit(self, staged: bytes | Path, info: ObjectInfo, durable: bool) -> ObjectInfo:
        final = self._path(info.key)
        try:
            existing = self._read_info(final, info.key)
        except IntegrityError:
            # A damaged copy, e.g. a put not yet synced when the power failed: the key
            # is the hash of the bytes staged here, so they are what belongs there.
            _unlink(final)
            existing = None
        if existing is not None:
            if not durable:  # another process may have put it without syncing yet
                self._defer(final)
            return existing
        if isinstance(staged, Path):
            source = str(staged)
            fd = os.open(source, os.O_WRONLY | os.O_APPEND)
        else:
            fd, source = tempfile.mkstemp(prefix=STAGING_PREFIX, dir=self.staging_dir)
        try:
            try:
                if isinstance(staged, bytes):
                    write_all(fd, staged)
                write_all(fd, _trailer(info))
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            return self._publish(source, final, info, durable)
        finally:
            if isinstance(staged, bytes):
                _unlink(source)

    def _publish(self, source: str, final: str, info: ObjectInfo, durable: bool) -> ObjectInfo:
        """Give the finished staging file its final name, unless a racing put did first."""
        folder = os.path.dirname(final)
        self._ensure_shard(folder)
        try:
            os.link(source, final)
        except FileExistsError:
            if not durable:
                self._defer(final)
            return self._read_info(final, info.key) or info
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            os.replace(source, final)
        if durable:
            fsync_dir(folder)
        else:
            self._defer(final)
        return info

    def _defer(self, path: str) -> None:
        with self._unsynced_lock:
            self._unsynced.add(path)

    def _sync(self) -> None:
        """One ``syncfs`` for every deferred object where Linux has it, else an fsync each.

        Two fsyncs per object (its file, its folder) cost more CPU than
        reading and chunking a small document, and each one waits for a
        journal commit; one ``syncfs`` commits them all at once. It flushes
        the whole filesystem, other files included: more than needed, never
        less. A failed sync keeps the objects pending for the next one.
        """
        with self._unsynced_lock:
            pending, self._unsynced = self._unsynced, set()
        if not pending:
            return
        try:
            sync_paths(self._root_text, pending)
        except BaseException:
            with self._unsynced_lock:
                self._unsynced |= pending
            raise

    def _head(self, key: str) -> ObjectInfo | None:
        return self._read_info(self._path(key), key)

    def _reader(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            raw = io.FileIO(path, "r")
        except FileNotFoundError:
            raise NotFoundError(f"objects slot: no object {key!r} in {self.url.redacted}") from None
        try:
            size = _data_size(raw, key, path)
        except BaseException:
            raw.close()
            raise
        return io.BufferedReader(_Window(raw, size))

    def _read_all(self, key: str) -> bytes:
        """Two reads and no stream objects: small reads are dominated by Python overhead."""
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise NotFoundError(f"objects slot: no object {key!r} in {self.url.redacted}") from None
        try:
            total = os.fstat(fd).st_size
            length = _json_length(os.pread(fd, _FOOTER, max(total - _FOOTER, 0)), total)
            if length is None:
                raise _corrupt(key, path)
            size = total - length - _FOOTER
            data = os.read(fd, size)
            while len(data) < size:  # one read may return less for very large files
                more = os.read(fd, size - len(data))
                if not more:
                    raise _corrupt(key, path, "it is shorter than its trailer says")
                data += more
            return data
        finally:
            os.close(fd)

    def _delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        fsync_dir(os.path.dirname(path))
        return True

    def _list(self, tenant: str, prefix: str) -> Iterator[ObjectInfo]:
        for shard in _shards(os.path.join(self._root_text, tenant), prefix[:2]):
            names = sorted(
                entry.name
                for entry in _scan(shard)
                if len(entry.name) == 64 and _HEX.issuperset(entry.name)
            )
            for name in names:
                if name.startswith(prefix):
                    info = self._read_info(os.path.join(shard, name), f"{tenant}/{name}")
                    if info is not None:
                        yield info

    # -- the trailer -----------------------------------------------------------

    def _read_info(self, path: str, key: str) -> ObjectInfo | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            total = os.fstat(fd).st_size
            tail = os.pread(fd, min(total, _TAIL_READ), max(total - _TAIL_READ, 0))
            length = _json_length(tail, total)
            if length is None:
                raise _corrupt(key, path)
            if length + _FOOTER <= len(tail):
                encoded = tail[len(tail) - _FOOTER - length : len(tail) - _FOOTER]
            else:
                encoded = os.pread(fd, length, total - _FOOTER - length)
        finally:
            os.close(fd)
        return _decode_info(encoded, key, path, total - length - _FOOTER)


class _Window(io.RawIOBase):
    """The first ``size`` bytes of a file: hides the trailer from readers."""

    def __init__(self, raw: io.FileIO, size: int) -> None:
        super().__init__()
        self._raw = raw
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        limit = min(len(view), self._size - self._pos)
        if limit <= 0:
            return 0
        count = self._raw.readinto(view[:limit]) or 0
        self._pos += count
        return count

    def readall(self) -> bytes:
        remaining = self._size - self._pos
        if remaining <= 0:
            return b""
        data = self._raw.read(remaining) or b""
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        position = max(base + offset, 0)
        self._raw.seek(min(position, self._size))
        self._pos = position
        return position

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._raw.close()
        super().close()


def _trailer(info: ObjectInfo) -> bytes:
    encoded = json.dumps(
        {
            "v": 1,
            "sha256": info.sha256,
            "size": info.size,
            "content_type": info.content_type,
            "metadata": info.metadata,
            "created_at": info.created_at.isoformat(),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    return encoded + len(encoded).to_bytes(4, "big") + MAGIC


def _json_length(tail: bytes, total: int) -> int | None:
    """The trailer JSON's length from the last bytes of a file, or None if it has none."""
    if len(tail) < _FOOTER or not tail.endswith(MAGIC):
        return None
    length = int.from_bytes(tail[-_FOOTER : -len(MAGIC)], "big")
    return length if length + _FOOTER <= total else None


def _data_size(raw: io.FileIO, key: str, path: str) -> int:
    total = os.fstat(raw.fileno()).st_size
    length = _json_length(os.pread(raw.fileno(), _FOOTER, max(total - _FOOTER, 0)), total)
    if length is None:
        raise _corrupt(key, path)
    return total - length - _FOOTER


def _decode_info(encoded: bytes, key: str, path: str, size: int) -> ObjectInfo:
    tenant, digest = key.split("/")
    try:
        meta: Any = json.loads(encoded)
        info = ObjectInfo(
            key=key,
            tenant=tenant,
            sha256=meta["sha256"],
            size=meta["size"],
            content_type=meta["content_type"],
            metadata=dict(meta["metadata"]),
            created_at=datetime.fromisoformat(meta["created_at"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise _corrupt(key, path, f"unreadable info ({type(exc).__name__}: {exc})") from exc
    if info.sha256 != digest or info.size != size:
        raise _corrupt(key, path, "its info does not match its name or length")
    return info


def _corrupt(key: str, path: str, why: str = "no Janus trailer") -> IntegrityError:
    return IntegrityError(
        f"objects slot: object {key!r} at {path} is damaged: {why}",
        hint="run `janus verify`; restore the file from a backup or re-ingest the document",
    )


def _scan(folder: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _shards(folder: str, want: str) -> list[str]:
    """The two-hex-digit shard folders under ``folder`` that can hold ``want``-prefixed keys."""
    names = sorted(
        entry.name
        for entry in _scan(folder)
        if len(entry.name) == 2
        and _HEX.issuperset(entry.name)
        and entry.name.startswith(want)
        and entry.is_dir(follow_symlinks=False)
    )
    return [os.path.join(folder, name) for name in names]


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
