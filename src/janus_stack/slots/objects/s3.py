"""The server objects backend: any S3 API (MinIO, AWS S3, Ceph RGW, moto) via boto3.

URL: ``s3://bucket[/key-prefix]?endpoint=http://host:9000&region=us-east-1
&access_key=...&secret_key=...``. Without keys, boto3's default chain
(environment, profile, instance role) applies; keys may be ``env:``/``file:``
references. Optional: ``session_token``, ``addressing`` (``path`` — the
default with an ``endpoint``, as MinIO expects — ``virtual`` or ``auto``) and
``staging`` (local folder for puts in progress; default a ``janus-objects-staging``
folder in the system temp dir).

An object is stored at ``<prefix>/<tenant>/<sha256>`` with its content type
as ``Content-Type`` and Janus' info as user metadata (``janus-sha256``,
``janus-created-at``, ``janus-meta``). Small puts are one conditional
``PutObject`` (``If-None-Match: *``, so an identical put never clobbers the
first one's info) carrying the sha256 we already computed as the S3 checksum,
so a server that verifies checksums (AWS S3, MinIO) rejects a corrupted
upload. Large puts go through boto3's multipart ``upload_file`` after a
``HeadObject``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Literal, NoReturn
from urllib.parse import unquote, urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from janus_stack.errors import IntegrityError, NotFoundError, SlotUnavailableError, SlotURLError
from janus_stack.slots.objects import DEFAULT_CONTENT_TYPE, ObjectInfo, ObjectStore
from janus_stack.slots.objects.keys import encode_metadata
from janus_stack.urls import MASK, SlotURL

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

MULTIPART_THRESHOLD = 16 * 1024 * 1024
MULTIPART_CHUNK = 8 * 1024 * 1024
_QUERY = frozenset(
    {"endpoint", "region", "access_key", "secret_key", "session_token", "addressing", "staging"}
)
_ADDRESSING: Mapping[str, Literal["path", "virtual", "auto"]] = {
    "path": "path",
    "virtual": "virtual",
    "auto": "auto",
}
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_EXISTS = frozenset({"412", "PreconditionFailed", "ConditionalRequestConflict"})
_AUTH = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
)


class S3Objects(ObjectStore):
    """Objects in one S3 bucket; the boto3 client is thread-safe, so is this store."""

    backend: ClassVar[str] = "s3"
    hint: ClassVar[str] = (
        "check that the S3 server is running and the endpoint, region and credentials "
        "in the objects URL are right"
    )

    def __init__(self, url: SlotURL) -> None:
        super().__init__(url)
        parts = urlsplit(url.resolved)
        query = url.query
        unknown = sorted(set(query) - _QUERY)
        if unknown:
            raise SlotURLError(
                f"objects slot: {url.redacted!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"accepted: {', '.join(sorted(_QUERY))}"
            )
        if not _BUCKET.fullmatch(parts.netloc):
            raise SlotURLError(
                f"objects slot: {url.redacted!r}: {parts.netloc!r} is not a bucket name "
                "(3-63 lowercase letters, digits, '.' or '-')"
            )
        if bool(query.get("access_key")) != bool(query.get("secret_key")):
            raise SlotURLError(
                f"objects slot: {url.redacted!r}: give both access_key and secret_key, "
                "or neither to use boto3's default credentials"
            )
        addressing = query.get("addressing", "path" if query.get("endpoint") else "auto")
        if addressing not in _ADDRESSING:
            raise SlotURLError(
                f"objects slot: {url.redacted!r}: addressing={addressing!r}; "
                "use path, virtual or auto"
            )
        self.bucket = parts.netloc
        prefix = parts.path.strip("/")
        self._prefix = f"{prefix}/" if prefix else ""
        self._query = query
        self._addressing = _ADDRESSING[addressing]
        self._secrets = {
            value
            for value in (
                *url.secrets,
                query.get("access_key"),
                query.get("secret_key"),
                query.get("session_token"),
            )
            if value
        }
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_CHUNK,
            max_concurrency=4,
        )
        self._client: S3Client | None = None

    # -- open / close ----------------------------------------------------------

    def _open(self) -> None:
        staging = self._query.get("staging")
        self._prepare_staging(
            Path(staging).expanduser()
            if staging
            else Path(tempfile.gettempdir()) / "janus-objects-staging"
        )
        session = boto3.session.Session(
            aws_access_key_id=self._query.get("access_key") or None,
            aws_secret_access_key=self._query.get("secret_key") or None,
            aws_session_token=self._query.get("session_token") or None,
            region_name=self._query.get("region") or "us-east-1",
        )
        config = Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": self._addressing},
            # S3-compatible servers vary in checksum support; we send our own sha256.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=16,
        )
        client = session.client(
            "s3", endpoint_url=self._query.get("endpoint") or None, config=config
        )
        try:
            self._ensure_bucket(client)
        except BaseException:
            client.close()
            raise
        self._client = client

    def _ensure_bucket(self, client: S3Client) -> None:
        """Create the bucket if it is missing.

        Zero set-up, like the embedded default: a fresh MinIO has no buckets,
        and a first ``janus serve`` should not need a separate admin step.
        Creation is idempotent; a user without the right to create it gets a
        clear error naming the bucket.
        """
        with self._errors(f"check bucket {self.bucket!r}"):
            try:
                client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                    raise
            else:
                return
            region = client.meta.region_name
            try:
                if region == "us-east-1":
                    client.create_bucket(Bucket=self.bucket)
                else:
                    client.create_bucket(
                        Bucket=self.bucket,
                        CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
                    )
            except ClientError as exc:
                if _code(exc) != "BucketAlreadyOwnedByYou":
                    raise

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- helpers ---------------------------------------------------------------

    @property
    def _s3(self) -> S3Client:
        self._require_open()
        if self._client is None:
            raise RuntimeError("S3Objects is open without a client")
        return self._client

    def _s3_key(self, key: str) -> str:
        return self._prefix + key

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def _fail(self, action: str, exc: Exception) -> NoReturn:
        if isinstance(exc, ClientError):
            code = _code(exc)
            detail = f"{code}: {exc.response.get('Error', {}).get('Message', '')}".rstrip(": ")
            hint = (
                "check the access_key/secret_key and the bucket policy"
                if code in _AUTH
                else self.hint
            )
        else:
            first = (str(exc).strip().splitlines() or [""])[0]
            detail = f"{type(exc).__name__}: {first}"
            hint = (
                "give access_key and secret_key in the URL or configure boto3's credentials"
                if isinstance(exc, NoCredentialsError)
                else self.hint
            )
        raise SlotUnavailableError(
            self._scrub(f"objects slot: {action} failed on s3 at {self.url.redacted}: {detail}"),
            hint=hint,
        ) from exc

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn boto3/botocore failures into ``SlotUnavailableError`` naming the URL."""
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            self._fail(action, exc)

    def _user_metadata(self, info: ObjectInfo) -> dict[str, str]:
        return {
            "janus-sha256": info.sha256,
            "janus-created-at": info.created_at.isoformat(),
            "janus-meta": encode_metadata(info.metadata),
        }

    def _info(self, key: str, response: Any) -> ObjectInfo:
        tenant, digest = key.split("/")
        stored: dict[str, str] = response.get("Metadata") or {}
        where = f"s3 object {self._s3_key(key)!r} in bucket {self.bucket!r}"
        if stored.get("janus-sha256", digest) != digest:
            raise IntegrityError(f"objects slot: {where} carries a sha256 that is not its key's")
        created = stored.get("janus-created-at")
        try:
            created_at = datetime.fromisoformat(created) if created else response["LastModified"]
        except ValueError as exc:
            raise IntegrityError(f"objects slot: {where} has a bad janus-created-at") from exc
        return ObjectInfo(
            key=key,
            tenant=tenant,
            sha256=digest,
            size=int(response["ContentLength"]),
            content_type=response.get("ContentType") or DEFAULT_CONTENT_TYPE,
            metadata=decode_metadata(stored.get("janus-meta", "%7B%7D"), where=where),
            created_at=created_at,
        )

    # -- the core --------------------------------------------------------------

    def _commit(self, staged: bytes | Path, info: ObjectInfo, durable: bool) -> ObjectInfo:
        """An S3 put is durable when it returns: ``durable`` changes nothing."""
        client = self._s3
        s3_key = self._s3_key(info.key)
        metadata = self._user_metadata(info)
        with self._errors(f"put {info.key!r}"):
            if isinstance(staged, Path) and info.size > MULTIPART_THRESHOLD:
                existing = self._head(info.key)
                if existing is not None:
                    return existing
                client.upload_file(
                    str(staged),
                    self.bucket,
                    s3_key,
                    ExtraArgs={"ContentType": info.content_type, "Metadata": metadata},
                    Config=self._transfer,
                )
                return info
            # Bytes, not a file, when small: botocore adds an Expect: 100-continue
            # round trip to every file-like body.
            with contextlib.ExitStack() as stack:
                body = (
                    staged if isinstance(staged, bytes) else stack.enter_context(staged.open("rb"))
                )
                try:
                    client.put_object(
                        Bucket=self.bucket,
                        Key=s3_key,
                        Body=body,
                        ContentLength=info.size,
                        ChecksumSHA256=base64.b64encode(bytes.fromhex(info.sha256)).decode(),
                        IfNoneMatch="*",
                        ContentType=info.content_type,
                        Metadata=metadata,
                    )
                except ClientError as exc:
                    if _code(exc) not in _EXISTS:
                        raise
                    return self._head(info.key) or info
        return info

    def _head(self, key: str) -> ObjectInfo | None:
        with self._errors(f"head {key!r}"):
            try:
                response = self._s3.head_object(Bucket=self.bucket, Key=self._s3_key(key))
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise
        return self._info(key, response)

    def _reader(self, key: str) -> BinaryIO:
        with self._errors(f"get {key!r}"):
            try:
                response = self._s3.get_object(Bucket=self.bucket, Key=self._s3_key(key))
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    raise NotFoundError(
                        f"objects slot: no object {key!r} in {self.url.redacted}"
                    ) from None
                raise
        return io.BufferedReader(_Body(response["Body"], self, key), buffer_size=1 << 16)

    def _delete(self, key: str) -> bool:
        if self._head(key) is None:
            return False
        with self._errors(f"delete {key!r}"):
            self._s3.delete_object(Bucket=self.bucket, Key=self._s3_key(key))
        return True

    def _list(self, tenant: str, prefix: str) -> Iterator[ObjectInfo]:
        """Listing returns keys only, so each object costs one HeadObject for its info."""
        base = f"{self._prefix}{tenant}/"
        paginator = self._s3.get_paginator("list_objects_v2")
        with self._errors(f"list tenant {tenant!r} prefix {prefix!r}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base + prefix):
                for item in page.get("Contents", []):
                    digest = item.get("Key", "")[len(base) :]
                    if not _SHA256.fullmatch(digest):
                        continue  # not written by Janus
                    info = self._head(f"{tenant}/{digest}")
                    if info is not None:
                        yield info


class _Body(io.RawIOBase):
    """botocore's streaming body as a raw stream whose read errors name the store."""

    def __init__(self, body: StreamingBody, store: S3Objects, key: str) -> None:
        super().__init__()
        self._body = body
        self._store = store
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        with self._store._errors(f"read {self._key!r}"):
            data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        with self._store._errors(f"read {self._key!r}"):
            return self._body.read()

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def decode_metadata(encoded: str, *, where: str) -> dict[str, str]:
    try:
        value = json.loads(unquote(encoded))
    except ValueError as exc:
        raise IntegrityError(f"objects slot: unreadable metadata on {where}: {exc}") from exc
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise IntegrityError(f"objects slot: metadata on {where} is not a string mapping")
    return value


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
