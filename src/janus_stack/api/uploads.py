"""Receiving a multipart upload without ever holding more than the limit.

The body is read as a stream and counted; past ``max_upload_bytes`` (plus a
little room for the multipart framing) the upload stops with 413, before
the rest is read. A ``Content-Length`` over the limit is refused before a
single byte is read. Starlette's parser spools the file part to a temporary
file (in memory up to 1 MiB), from which the route streams it into the
objects slot in bounded chunks. Text fields and part names must be valid in
the body's charset (UTF-8 unless it says otherwise): Starlette would quietly
read broken bytes as Latin-1, so a mangled tag would be stored as sent.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from janus_stack.api.sources import check_name
from janus_stack.errors import InvalidInputError, PayloadTooLargeError

FRAMING_SLACK = 64 * 1024
MAX_FIELDS = 40
_TAG_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")


class _StrictParser(MultiPartParser):
    """Starlette's multipart parser, refusing names and text fields its charset cannot read."""

    def _require_decodable(self, data: bytes | bytearray, what: str) -> None:
        try:
            bytes(data).decode(self._charset or "utf-8")
        except UnicodeDecodeError as exc:
            raise MultiPartException(
                f"{what} is not valid {self._charset or 'utf-8'} ({exc.reason} at byte {exc.start})"
            ) from None

    def on_headers_finished(self) -> None:
        disposition = self._current_part.content_disposition or b""
        self._require_decodable(disposition, "a part's name or file name")
        super().on_headers_finished()

    def on_part_end(self) -> None:
        if self._current_part.file is None:
            self._require_decodable(
                self._current_part.data, f"form field {self._current_part.field_name!r}"
            )
        super().on_part_end()


@dataclass
class Upload:
    file: UploadFile
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    entities: bool = True


def _parse_tags(values: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not _TAG_KEY.fullmatch(key):
            raise InvalidInputError(
                f"tag {value[:80]!r} must be written key=value with a key of letters, digits, "
                "'_', '.', ':' or '-'"
            )
        if len(text) > 1000:
            raise InvalidInputError(f"tag {key!r}: the value is longer than 1000 characters")
        tags[key] = text
    return tags


def _flag(value: str, field_name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise InvalidInputError(f"form field {field_name!r} must be true or false, not {value!r}")


def _check_size(size: int | None, max_bytes: int) -> None:
    if size is not None and size > max_bytes:
        raise PayloadTooLargeError(f"the file is {size:,} bytes; the limit is {max_bytes:,}")


async def receive_upload(request: Request, max_bytes: int) -> Upload:
    """Parse the multipart body: one ``file`` part, optional ``tag`` and ``entities`` fields.

    Raises:
        PayloadTooLargeError: the body is larger than ``max_bytes`` (+ framing).
        InvalidInputError: not multipart, no file part, a bad name, tag or flag.
    """
    limit = max_bytes + FRAMING_SLACK
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"the upload is {int(declared):,} bytes; the limit is {max_bytes:,}",
            hint="split the file, or start the server with a larger --max-upload-mb",
        )
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidInputError(
            "upload documents as multipart/form-data with a 'file' part",
            hint="curl -F file=@report.pdf ...",
        )

    async def counted() -> AsyncGenerator[bytes, None]:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLargeError(
                    f"the upload exceeds the limit of {max_bytes:,} bytes",
                    hint="split the file, or start the server with a larger --max-upload-mb",
                )
            yield chunk

    parser = _StrictParser(request.headers, counted(), max_files=1, max_fields=MAX_FIELDS)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidInputError(f"the multipart body is malformed: {exc.message}") from exc
    part = form.get("file")
    if not isinstance(part, UploadFile):
        await form.close()
        raise InvalidInputError("the upload has no 'file' part holding a file")
    try:
        name = check_name(part.filename)
        _check_size(part.size, max_bytes)
        tags = _parse_tags([v for v in form.getlist("tag") if isinstance(v, str)])
        entities_field = form.get("entities")
        entities = _flag(entities_field, "entities") if isinstance(entities_field, str) else True
    except BaseException:
        await form.close()
        raise
    return Upload(file=part, name=name, tags=tags, entities=entities)
