"""The objects slot: raw files and artifacts, content-addressed within a tenant.

The key of an object is ``"{tenant}/{sha256}"`` of its bytes, so the same
document ingested twice lands on the same key and a re-run after a crash is
a no-op (ARCHITECTURE.md §1.2-1.3). Every validation, the streaming hash
and the size limit live here once; a backend only commits a finished,
verified staging file and answers lookups.

Backends (chosen by the URL scheme):

    file:///abs/path                          DirectoryObjects (embedded default)
    s3://bucket[/prefix]?endpoint=...&...     S3Objects (MinIO, AWS S3, any S3 API)
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, ClassVar

from janus_stack.errors import IntegrityError, InvalidInputError, NotFoundError
from janus_stack.ids import check_tenant
from janus_stack.slots.base import Slot, load_backend
from janus_stack.slots.objects.keys import (
    MAX_METADATA_BYTES,
    check_content_type,
    check_metadata,
    make_key,
    split_key,
)
from janus_stack.slots.objects.spool import STAGING_PREFIX, Readable, Spool
from janus_stack.urls import SlotURL

__all__ = [
    "ACCEPTED_SCHEMES",
    "BACKENDS",
    "DEFAULT_CONTENT_TYPE",
    "MAX_METADATA_BYTES",
    "PROBE_TENANT",
    "ObjectInfo",
    "ObjectStore",
    "Readable",
    "make_key",
    "open",
    "split_key",
]

BACKENDS: Mapping[str, str] = {
    "file": "objects.directory:DirectoryObjects",
    "s3": "objects.s3:S3Objects",
}
ACCEPTED_SCHEMES: tuple[str, ...] = tuple(sorted(BACKENDS))

DEFAULT_CONTENT_TYPE = "application/octet-stream"
STALE_STAGING_SECONDS = 24 * 3600
# `janus doctor` writes here; its random payload never collides with real data.
PROBE_TENANT = "_doctor"

_HEX_PREFIX = re.compile(r"[0-9a-f]{0,64}")


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows about one object; equal on every backend for the same put."""

    key: str
    tenant: str
    sha256: str
    size: int
    content_type: str
    metadata: dict[str, str] = field(hash=False)
    created_at: datetime


class ObjectStore(Slot):
    """Content-addressed blobs per tenant; the public methods validate, backends store.

    A backend implements ``_open``/``_close`` and the narrow core below
    (``_commit``, ``_head``, ``_reader``, ``_delete``, ``_list``); it never
    sees an unvalidated key or an unhashed payload.
    """

    slot: ClassVar[str] = "objects"

    def __init__(self, url: SlotURL) -> None:
        super().__init__(url)
        self._staging: Path | None = None

    # -- the narrow core -------------------------------------------------------

    def _commit(self, staged: bytes | Path, info: ObjectInfo, durable: bool) -> ObjectInfo:
        """Store the staged bytes under ``info.key`` unless the key exists.

        ``staged`` is the content itself when it fits in ``SPOOL_BYTES``, else
        a file in ``staging_dir`` that the backend may move, extend or consume.
        Returns ``info`` for a new object, the existing object's info otherwise
        (the put is then a no-op). Unless ``durable``, the backend may leave
        making the object durable to the next ``_sync``.
        """
        raise NotImplementedError

    def _sync(self) -> None:
        """Make the objects committed without ``durable`` durable (where puts are not always)."""

    def _head(self, key: str) -> ObjectInfo | None:
        raise NotImplementedError

    def _reader(self, key: str) -> BinaryIO:
        """A stream positioned at the object's first byte; ``NotFoundError`` if missing."""
        raise NotImplementedError

    def _delete(self, key: str) -> bool:
        raise NotImplementedError

    def _list(self, tenant: str, prefix: str) -> Iterator[ObjectInfo]:
        """The tenant's objects whose sha256 starts with ``prefix``, sorted by key."""
        raise NotImplementedError

    def _read_all(self, key: str) -> bytes:
        """The whole object; a backend may override this with a shorter path than a stream."""
        with contextlib.closing(self._reader(key)) as stream:
            return stream.read()

    # -- staging ---------------------------------------------------------------

    @property
    def staging_dir(self) -> Path:
        """Where puts stream their input before commit (leftovers after a crash stay here)."""
        self._require_open()
        if self._staging is None:
            raise RuntimeError(f"{type(self).__name__}._open() did not prepare staging")
        return self._staging

    def _prepare_staging(self, directory: Path) -> None:
        """Create the staging folder and sweep leftovers of crashed puts.

        Only files older than a day are removed: another process sharing
        the folder may be streaming a large put right now.
        """
        directory.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - STALE_STAGING_SECONDS
        for entry in os.scandir(directory):
            if entry.name.startswith(STAGING_PREFIX) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
        self._staging = directory

    def _stage(
        self, data: bytes | Readable, tenant: str, max_bytes: int | None
    ) -> tuple[bytes | Path, str, int]:
        """Read ``data`` in chunks, hashing and counting, into memory or a staging file."""
        spool = Spool(self.staging_dir)
        try:
            spool.fill(data, tenant, max_bytes)
            staged = spool.finish()
        except BaseException:
            spool.discard()
            raise
        return staged, spool.digest.hexdigest(), spool.size

    # -- the public API --------------------------------------------------------

    def put(
        self,
        data: bytes | Readable,
        *,
        tenant: str,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        durable: bool = True,
    ) -> ObjectInfo:
        """Store ``data`` (bytes or a binary stream, read in chunks) and return its info.

        Idempotent: the same bytes for the same tenant return the first
        put's info and store nothing new.

        With ``durable=False`` the object is readable at once but may survive
        a power loss only after the next :meth:`sync`: a caller storing many
        objects (ingest) syncs once before it records them anywhere, instead
        of waiting for the disk on every put.
        """
        self._require_open()
        check_tenant(tenant)
        check_content_type(content_type, tenant)
        checked = check_metadata(metadata, tenant)
        if max_bytes is not None and (isinstance(max_bytes, bool) or max_bytes < 0):
            raise InvalidInputError(f"objects slot: max_bytes={max_bytes!r} must be >= 0")
        staged, sha256, size = self._stage(data, tenant, max_bytes)
        try:
            info = ObjectInfo(
                key=make_key(tenant, sha256),
                tenant=tenant,
                sha256=sha256,
                size=size,
                content_type=content_type,
                metadata=checked,
                created_at=datetime.now(UTC),
            )
            return self._commit(staged, info, durable)
        finally:
            if isinstance(staged, Path):
                staged.unlink(missing_ok=True)

    def sync(self) -> None:
        """Make every object this store put with ``durable=False`` durable.

        Call it before a durable record (the ledger) refers to such objects.
        """
        self._require_open()
        self._sync()

    @contextlib.contextmanager
    def get(self, key: str) -> Iterator[BinaryIO]:
        """Open the object for streaming reads; the stream closes with the block."""
        self._require_open()
        split_key(key)
        stream = self._reader(key)
        try:
            yield stream
        finally:
            stream.close()

    def read_bytes(self, key: str) -> bytes:
        """The whole object in memory: for small objects only."""
        self._require_open()
        split_key(key)
        return self._read_all(key)

    def head(self, key: str) -> ObjectInfo:
        self._require_open()
        split_key(key)
        info = self._head(key)
        if info is None:
            raise NotFoundError(f"objects slot: no object {key!r} in {self.url.redacted}")
        return info

    def exists(self, key: str) -> bool:
        self._require_open()
        split_key(key)
        return self._head(key) is not None

    def delete(self, key: str) -> bool:
        """Remove the object; True if it existed."""
        self._require_open()
        split_key(key)
        return self._delete(key)

    def list(self, prefix: str = "", *, tenant: str) -> Iterator[ObjectInfo]:
        """The tenant's objects, sorted by key; ``prefix`` is a prefix of the sha256."""
        self._require_open()
        check_tenant(tenant)
        if not isinstance(prefix, str) or not _HEX_PREFIX.fullmatch(prefix):
            raise InvalidInputError(
                f"objects slot: list prefix {prefix!r} for tenant {tenant!r} must be the "
                "start of a sha256: up to 64 lowercase hex digits"
            )
        return self._list(tenant, prefix)

    def probe(self) -> None:
        """Round-trip a small object under tenant ``_doctor``; raise if the store lies.

        The payload carries a random nonce so concurrent probes never
        delete each other's object.
        """
        payload = b"janus doctor probe " + secrets.token_hex(16).encode()
        info = self.put(payload, tenant=PROBE_TENANT, content_type="text/plain")
        try:
            problem = (
                "reads back different bytes"
                if self.read_bytes(info.key) != payload
                else "reports a different sha256"
                if self.head(info.key).sha256 != info.sha256
                else None
            )
        finally:
            self.delete(info.key)
        if problem is None and self.exists(info.key):
            problem = "still exists after delete"
        if problem is not None:
            raise IntegrityError(
                f"objects slot: probe object {info.key!r} in {self.url.redacted} {problem}"
            )


def open(url: SlotURL | str) -> ObjectStore:
    """The backend for ``url``'s scheme, constructed but not opened."""
    parsed = url if isinstance(url, SlotURL) else SlotURL.parse("objects", url)
    return load_backend(parsed, BACKENDS, ObjectStore)
